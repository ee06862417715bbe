"""Comparing two versions of an imported knowledge table (``claimaudit kb diff OLD NEW``).

A knowledge point is identified by its key (``code``) and its kind's identity columns (e.g. the
restriction for drug restrictions, the second code for duplicate-charge pairs). Points present only
in NEW are added, only in OLD removed; points in both whose values or original text differ are
changed. Provenance (point id, batch, file, row, import date) and effective dates are not compared:
they differ between any two batches. The kind is recognised from the columns.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .kb_layouts import KINDS, Kind, all_columns
from .kb_read import KbImportError

PROVENANCE = frozenset(("point_id", "source", "batch", "source_file", "source_row", "code_row", "imported_on",
                        "effective_from", "effective_to"))
_LIST_SEPARATORS = (";", "；", "|", ",", "，", "、")


@dataclass
class Change:
    identity: dict
    old: dict
    new: dict
    changes: dict  # column -> (old value, new value)


@dataclass
class DiffResult:
    old_path: Path
    new_path: Path
    kind: str  # a kind name, or "table" for a table with a code column not written by kb import
    identity: tuple[str, ...]
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0

    def to_json(self) -> dict:
        return {"old": str(self.old_path), "new": str(self.new_path), "kind": self.kind,
                "identity": list(self.identity),
                "summary": {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed),
                            "unchanged": self.unchanged},
                "added": self.added, "removed": self.removed,
                "changed": [{"identity": c.identity, "changes": {k: list(v) for k, v in c.changes.items()},
                             "old": c.old, "new": c.new} for c in self.changed]}


def read_table(path: str | Path) -> tuple[list[str], list[dict]]:
    """Column names and rows of an imported table, every value as text (lists as 'a;b', dates ISO)."""
    path = Path(path)
    if not path.exists():
        raise KbImportError(f"{path}: file not found")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq
            table = pq.read_table(path)
            return table.column_names, [{k: _text(v) for k, v in r.items()} for r in table.to_pylist()]
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                columns = [c.strip() for c in reader.fieldnames or []]
                return columns, [{c: (v or "").strip() for c, v in zip(columns, r.values())} for r in reader]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise KbImportError(f"{path}: cannot read ({e})") from None
    except Exception as e:  # pyarrow's errors: a corrupt Parquet file is a user mistake, not a crash
        raise KbImportError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    raise KbImportError(f"{path}: unsupported table type '{path.suffix}' (use .csv or .parquet)")


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ";".join(_text(x) for x in v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v).strip()


def kind_of(columns: list[str]) -> Kind | None:
    """The kind whose output columns the table has (the most specific one)."""
    have = set(columns)
    fits = [k for k in KINDS.values() if {c.name for c in all_columns(k)} <= have]
    return max(fits, key=lambda k: len(all_columns(k)), default=None)


def diff_tables(old_path: str | Path, new_path: str | Path) -> DiffResult:
    old_cols, old_rows = read_table(old_path)
    new_cols, new_rows = read_table(new_path)
    old_kind, new_kind = kind_of(old_cols), kind_of(new_cols)
    if old_kind is not new_kind:
        raise KbImportError(f"cannot compare: {old_path} is {_kind_name(old_kind)}, {new_path} is "
                            f"{_kind_name(new_kind)}")
    if old_kind is None and not ("code" in old_cols and "code" in new_cols):
        raise KbImportError(f"cannot compare: {old_path} and {new_path} need a 'code' column "
                            "(tables written by claimaudit kb import have one)")
    identity = (old_kind.key,) + old_kind.identity if old_kind else ("code",)
    types = {c.name: c.type for c in all_columns(old_kind)} if old_kind else {}
    compared = [c for c in dict.fromkeys(old_cols + new_cols) if c not in PROVENANCE and c not in identity]
    result = DiffResult(Path(old_path), Path(new_path), old_kind.name if old_kind else "table", identity)
    _pair_up(_group(old_rows, identity), _group(new_rows, identity), compared, types, result)
    return result


def _kind_name(kind: Kind | None) -> str:
    return f"a {kind.name} table" if kind else "not a table written by claimaudit kb import"


def _group(rows: list[dict], identity: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(c, "") for c in identity), []).append(row)
    return groups


def _pair_up(old: dict, new: dict, compared: list[str], types: dict, result: DiffResult) -> None:
    """Rows with the same identity are paired in file order; the rest are added or removed."""
    for key in sorted(set(old) | set(new)):
        olds, news = old.get(key, []), new.get(key, [])
        for o, n in zip(olds, news):
            changes = {c: (o.get(c, ""), n.get(c, "")) for c in compared
                       if _comparable(o.get(c, ""), types.get(c)) != _comparable(n.get(c, ""), types.get(c))}
            if changes:
                result.changed.append(Change(dict(zip(result.identity, key)), o, n, changes))
            else:
                result.unchanged += 1
        result.removed.extend(olds[len(news):])
        result.added.extend(news[len(olds):])


def _comparable(value: str, type_: str | None):
    """Lists compare as sets, numbers as numbers ('14' = '14.0'), the rest as text."""
    if type_ == "list":
        s = value
        for sep in _LIST_SEPARATORS[1:]:
            s = s.replace(sep, ";")
        return tuple(sorted({p.strip() for p in s.split(";") if p.strip()}))
    if type_ == "number":
        try:
            return float(value) if value.strip() else ""
        except ValueError:
            pass
    return value.strip()
