"""Compiled bundles: the plan, its parameter tables and knowledge tables (Arrow IPC), and a manifest.

A bundle is a directory:

    manifest.json        format, compiler version, ruleset name/version, knowledge tables with row
                         counts and source hashes, family count, and the SHA-256 of every file
    plan.json            the rules (IR) and the families' templates, as tagged JSON
    families/F.arrow     parameter rows of family F: rule_index, point, key, one column per parameter
    knowledge/T.arrow    the rows of knowledge table T, for citations in findings

Loading checks the format and every file's hash before using anything, and refuses a corrupt or
mismatched bundle with a message that says which file and why.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from claimaudit.dsl import ast, ir
from claimaudit.dsl.knowledge import Column, KnowledgeTable
from claimaudit.dsl.ruleset import Ruleset
from claimaudit.dsl.units import Quantity

from .plan import Family, Plan

FORMAT = "claimaudit-bundle/1"
COMPILER_VERSION = "0.1.0"


class BundleError(Exception):
    pass


# ---- tagged JSON for IR ----------------------------------------------------------------------------

_CLASSES = {c.__name__: c for c in (ir.Const, ir.Field, ir.KnowledgeField, ir.Param, ir.Call, ir.Op, ir.Lookup,
                                    ir.Template, ir.Basis, ir.ExampleLine, ir.Example, ir.Rule, ir.Window,
                                    ir.WindowValue, ast.Span)}


def encode(v):
    if dataclasses.is_dataclass(v) and type(v).__name__ in _CLASSES:
        out = {"$t": type(v).__name__}
        for f in dataclasses.fields(v):
            out[f.name] = encode(getattr(v, f.name))
        return out
    if isinstance(v, Quantity):
        return {"$q": [v.base_value, v.dimension]}
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$d": v.isoformat()}
    if isinstance(v, tuple):
        return {"$tuple": [encode(x) for x in v]}
    if isinstance(v, frozenset):
        return {"$fset": sorted(encode(x) for x in v)}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, dict):
        return {"$map": [[encode(k), encode(x)] for k, x in v.items()]}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise TypeError(f"cannot put {type(v).__name__} in a bundle")


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "$t" in v:
        cls = _CLASSES[v["$t"]]
        return cls(**{k: decode(x) for k, x in v.items() if k != "$t"})
    if "$q" in v:
        return Quantity(float(v["$q"][0]), v["$q"][1])
    if "$dt" in v:
        return dt.datetime.fromisoformat(v["$dt"])
    if "$d" in v:
        return dt.date.fromisoformat(v["$d"])
    if "$tuple" in v:
        return tuple(decode(x) for x in v["$tuple"])
    if "$fset" in v:
        return frozenset(decode(x) for x in v["$fset"])
    if "$map" in v:
        return {decode(k): decode(x) for k, x in v["$map"]}
    raise BundleError(f"unknown tag in plan.json: {sorted(v)[:3]}")


# ---- typed columns <-> Arrow ---------------------------------------------------------------------------


def _to_arrow_column(values: list, type_: str) -> dict:
    """One logical column -> one or two Arrow columns (a quantity keeps its base value and dimension)."""
    if type_.startswith("quantity"):
        return {"": pa.array([q.base_value if q is not None else None for q in values], pa.float64()),
                "#dim": pa.array([q.dimension if q is not None else None for q in values], pa.string())}
    if type_ == "number":
        return {"": pa.array([float(v) if v is not None else None for v in values], pa.float64())}
    if type_ == "date":
        return {"": pa.array(values, pa.date32())}
    if type_ == "bool":
        return {"": pa.array(values, pa.bool_())}
    if type_ == "list" or type_.startswith("set:"):
        if type_ == "set:number":
            return {"": pa.array([list(v) if v is not None else None for v in values], pa.list_(pa.float64()))}
        return {"": pa.array([list(v) if v is not None else None for v in values], pa.list_(pa.string()))}
    return {"": pa.array(values, pa.string())}


def _from_arrow_column(table: pa.Table, name: str, type_: str) -> list:
    col = table.column(name).to_pylist()
    if type_.startswith("quantity"):
        dims = table.column(name + "#dim").to_pylist()
        return [Quantity(v, d) if v is not None else None for v, d in zip(col, dims)]
    if type_ == "list" or type_.startswith("set:"):
        return [tuple(v) if v is not None else None for v in col]
    return col


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_ipc(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        return ipc.open_file(source).read_all()


def _type_of_column(col: Column) -> str:
    return f"quantity:{col.unit}" if col.type == "quantity" else col.type


# ---- writing -------------------------------------------------------------------------------------------


def write_bundle(plan: Plan, out: str | Path) -> dict:
    """Write the bundle atomically (a temporary directory renamed into place); returns the manifest."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not is_bundle(out):
        raise BundleError(f"{out}: exists and is not a bundle; refusing to replace it (choose a new directory)")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "families").mkdir(parents=True)
    (tmp / "knowledge").mkdir()
    rs = plan.ruleset
    try:
        families = []
        for fam in plan.families:
            cols = {"rule_index": pa.array(fam.rule_index, pa.int32()), "point": pa.array(fam.point, pa.int32()),
                    "key": pa.array(fam.keys, pa.string())}
            for name, type_ in fam.params:
                for suffix, arr in _to_arrow_column(fam.values[name], type_).items():
                    cols[name + suffix] = arr
            _write_ipc(pa.table(cols), tmp / "families" / f"{fam.family_id}.arrow")
            families.append({"family_id": fam.family_id, "key_expr": encode(fam.key_expr), "match": fam.match,
                             "scope": encode(fam.scope), "condition": encode(fam.condition),
                             "amount": encode(fam.amount), "params": [list(p) for p in fam.params],
                             "source": fam.source, "fallback_reason": fam.fallback_reason})
        tables = []
        for t in rs.tables.values():
            cols = {"#file_row": pa.array(t.row_numbers, pa.int32())}
            for c in t.columns.values():
                for suffix, arr in _to_arrow_column([r.get(c.name) for r in t.rows], _type_of_column(c)).items():
                    cols[c.name + suffix] = arr
            _write_ipc(pa.table(cols), tmp / "knowledge" / f"{t.name}.arrow")
            tables.append({"name": t.name, "path": Path(t.path).name, "key": t.key, "match": t.match, "rows": len(t),
                           "partner": [t.partner, t.partner_match],
                           "columns": [[c.name, c.type, c.unit, c.role] for c in t.columns.values()],
                           "source_sha256": _sha256(Path(t.path)) if Path(t.path).exists() else None})
        plan_doc = {"rules": [encode(r) for r in rs.rules], "families": families}
        (tmp / "plan.json").write_text(json.dumps(plan_doc, ensure_ascii=False), encoding="utf-8")
        files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT, "compiler_version": COMPILER_VERSION,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "ruleset": {"name": rs.name, "version": rs.version, "meta": rs.meta},
            "rules": len(rs.rules), "families": len(plan.families),
            "parameter_rows": sum(len(f) for f in plan.families),
            "knowledge": tables, "files": files,
        }
        manifest["content_hash"] = _content_hash(manifest)
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def _content_hash(manifest: dict) -> str:
    """Covers every file and everything the manifest says (but the creation time), so an edit to the
    manifest is caught like an edit to a file."""
    body = {k: v for k, v in manifest.items() if k not in ("content_hash", "created")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- reading -------------------------------------------------------------------------------------------


def is_bundle(path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def looks_like_bundle(path) -> bool:
    """A bundle, or what is left of one (a directory with plan.json or families/)."""
    p = Path(path)
    return is_bundle(p) or (p.is_dir() and ((p / "plan.json").exists() or (p / "families").is_dir()))


def read_manifest(path) -> dict:
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a bundle (no manifest.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}/manifest.json: corrupt ({e})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r} is not {FORMAT!r}; "
                          f"recompile it with this version (claimaudit compile)")
    if manifest.get("compiler_version") != COMPILER_VERSION:
        raise BundleError(f"{path}: compiled by claimaudit {manifest.get('compiler_version')}, this is "
                          f"{COMPILER_VERSION}; recompile it (claimaudit compile)")
    return manifest


def verify(path, manifest: dict) -> None:
    path = Path(path)
    files = manifest.get("files") or {}
    if _content_hash(manifest) != manifest.get("content_hash"):
        raise BundleError(f"{path}/manifest.json: edited or corrupt (its content does not match its content hash)")
    for rel, digest in files.items():
        p = path / rel
        if not p.is_file():
            raise BundleError(f"{path}: {rel} is missing")
        if _sha256(p) != digest:
            raise BundleError(f"{path}: {rel} is corrupt (its SHA-256 does not match the manifest)")


def load_bundle(path, check: bool = True) -> Plan:
    path = Path(path)
    manifest = read_manifest(path)
    if check:
        verify(path, manifest)
    try:
        doc = json.loads((path / "plan.json").read_text(encoding="utf-8"))
        rules = tuple(decode(r) for r in doc["rules"])
        tables = {t["name"]: _load_table(path, t) for t in manifest["knowledge"]}
        rs = Ruleset(manifest["ruleset"]["name"], manifest["ruleset"]["version"], manifest["ruleset"]["meta"],
                     tables, rules, files=(str(path),))
        families = [_load_family(path, f) for f in doc["families"]]
    except BundleError:
        raise
    except Exception as e:  # a hand-edited or truncated bundle whose hashes were rewritten
        raise BundleError(f"{path}: cannot read the bundle: {type(e).__name__}: {e}") from None
    return Plan(rs, families, ())


def _load_table(path: Path, meta: dict) -> KnowledgeTable:
    """Memory-mapped Arrow; Python rows are made only when something asks for them."""
    table = _read_ipc(path / "knowledge" / f"{meta['name']}.arrow")
    columns = tuple(Column(n, t, u, r) for n, t, u, r in meta["columns"])

    def rows():
        data = {c.name: _from_arrow_column(table, c.name, _type_of_column(c)) for c in columns}
        names = list(data)
        return [dict(zip(names, vals)) for vals in zip(*data.values())] if names else []
    loaded = KnowledgeTable(meta["name"], meta["path"], columns, meta["key"], meta["match"], None,
                            table.column("#file_row").to_numpy().tolist(), load_rows=rows, n_rows=table.num_rows)
    partner, partner_match = meta.get("partner") or (None, None)
    return loaded.with_partner(partner, partner_match) if partner else loaded


class _ArrowValues(Mapping):
    """Parameter columns of a loaded family, turned into Python lists on first use."""

    def __init__(self, table: pa.Table, params: tuple):
        self._table, self._types, self._cache = table, dict(params), {}

    def __getitem__(self, name):
        if name not in self._cache:
            if name not in self._types:
                raise KeyError(name)
            self._cache[name] = _from_arrow_column(self._table, name, self._types[name])
        return self._cache[name]

    def __iter__(self):
        return iter(self._types)

    def __len__(self):
        return len(self._types)


def _load_family(path: Path, f: dict) -> Family:
    table = _read_ipc(path / "families" / f"{f['family_id']}.arrow")
    params = tuple(tuple(p) for p in f["params"])
    fam = Family(f["family_id"], decode(f["key_expr"]), f["match"], decode(f["scope"]), decode(f["condition"]),
                 decode(f["amount"]), params, f["source"], fallback_reason=f["fallback_reason"])
    fam.rule_index = table.column("rule_index").to_numpy().tolist()
    fam.point = table.column("point").to_numpy().tolist()
    fam.keys = table.column("key").to_pylist()
    fam.values = _ArrowValues(table, params)
    return fam


def timed_load(path) -> tuple[Plan, float]:
    started = time.perf_counter()
    plan = load_bundle(path)
    return plan, time.perf_counter() - started
