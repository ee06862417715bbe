"""Compiled bundles through the CLI: the manifest, a faithful round trip, the same findings as the
rule pack for audit/screen/explain, and refusal of corrupt, edited or foreign directories with one
clear line (never a traceback)."""
from __future__ import annotations

import hashlib
import re
import json
import os
import shutil
from pathlib import Path

import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine import bundle as bundle_mod
from claimaudit.engine.bundle import BundleError, load_bundle
from claimaudit.engine.cli import main
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
EXAMPLES = PACK / "examples"
REQUEST = EXAMPLES / "request.json"
CLAIMS = EXAMPLES / "claims.parquet"


def run(*args, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def in_checkout(*args):
    """Run the CLI from the checkout, so `rulesets/demo` is the relative path a user would type. (Rule spans,
    and so plan.json and findings' rule_location, keep the path the pack was given by.)"""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return run(*args)
    finally:
        os.chdir(cwd)


def compile_demo(out: Path):
    result = in_checkout("compile", "rulesets/demo", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: 12 rule(s), 12 family(ies), 20 parameter row(s), content ")
    return result


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The demo pack compiled by `claimaudit compile rulesets/demo -o TMP`."""
    out = tmp_path_factory.mktemp("bundle") / "demo.bundle"
    compile_demo(out)
    return out


@pytest.fixture(scope="module")
def plan():
    rs = load_ruleset(PACK)
    assert rs.ok
    return build_plan(rs)


@pytest.fixture
def copy(compiled, tmp_path):
    """A private copy of the bundle a test may damage."""
    dst = tmp_path / "copy.bundle"
    shutil.copytree(compiled, dst)
    return dst


def manifest_of(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


# ---- the manifest -------------------------------------------------------------------------------------


def test_manifest_fields(compiled, plan):
    m = manifest_of(compiled)
    rs = plan.ruleset
    assert m["format"] == bundle_mod.FORMAT == "claimaudit-bundle/1"
    assert m["compiler_version"] == bundle_mod.COMPILER_VERSION
    assert m["ruleset"]["name"] == rs.name == "示例规则包"
    assert m["ruleset"]["version"] == rs.version == "2026.11"
    assert m["rules"] == len(rs.rules) == 12
    assert m["families"] == len(plan.families) == 12
    assert m["parameter_rows"] == sum(len(f) for f in plan.families) == 20
    assert m["created"]


def test_manifest_knowledge_tables(compiled, plan):
    m = manifest_of(compiled)
    tables = {t["name"]: t for t in m["knowledge"]}
    assert set(tables) == set(plan.ruleset.tables) == {
        "drug_sex", "drug_age_min", "drug_insutype", "drug_hosp_lv", "drug_dept", "drug_indication",
        "drug_max_days", "drug_daily_dose", "item_price_cap"}
    for name, t in tables.items():
        src = PACK / "knowledge" / f"{name}.csv"
        assert t["path"] == src.name
        assert t["source_sha256"] == sha256(src), name
        data_rows = len(src.read_text(encoding="utf-8-sig").strip().splitlines()) - 1
        assert t["rows"] == data_rows == len(plan.ruleset.tables[name]), name
        assert t["key"] == "code"
        assert t["match"] == ("exact" if name == "item_price_cap" else "prefix")
        arrow = compiled / "knowledge" / f"{name}.arrow"
        with open(arrow, "rb") as fh:
            assert ipc.open_file(fh).read_all().num_rows == t["rows"]


def test_manifest_files_and_content_hash(compiled):
    m = manifest_of(compiled)
    on_disk = {str(p.relative_to(compiled)) for p in compiled.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(m["files"]) == on_disk
    assert "plan.json" in m["files"]
    assert {f"families/{i}.arrow" for i in range(m["families"])} <= set(m["files"])
    for rel, digest in m["files"].items():
        assert digest == sha256(compiled / rel), rel
    body = {k: v for k, v in m.items() if k not in ("content_hash", "created")}  # files and metadata, not the time
    assert m["content_hash"] == hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_compiling_twice_gives_the_same_content(compiled, tmp_path):
    again = tmp_path / "again"
    compile_demo(again)
    assert manifest_of(again)["content_hash"] == manifest_of(compiled)["content_hash"]


# ---- round trip ---------------------------------------------------------------------------------------


def test_round_trip_keeps_rules_families_and_explain(compiled, plan):
    loaded = load_bundle(compiled)
    assert loaded.ruleset.rules == plan.ruleset.rules  # IR equality, examples and spans included
    assert loaded.ruleset.name == plan.ruleset.name and loaded.ruleset.version == plan.ruleset.version
    assert loaded.explain() == plan.explain()
    assert len(loaded.families) == len(plan.families)
    for a, b in zip(loaded.families, plan.families):
        assert (a.family_id, a.key_expr, a.match, a.scope, a.condition, a.amount, a.params, a.source,
                a.fallback_reason) == (b.family_id, b.key_expr, b.match, b.scope, b.condition, b.amount, b.params,
                                       b.source, b.fallback_reason)
        assert (a.rule_index, a.point, a.keys, a.values) == (b.rule_index, b.point, b.keys, b.values)
    for name, t in plan.ruleset.tables.items():
        lt = loaded.ruleset.tables[name]
        assert (lt.rows, lt.row_numbers, lt.columns, lt.key, lt.match) == (t.rows, t.row_numbers, t.columns, t.key,
                                                                          t.match)


def test_explain_from_bundle_matches_pack(compiled):
    a, b = run("explain", PACK), run("explain", compiled)
    assert a.exit_code == b.exit_code == 0
    assert a.output == b.output
    assert "12 rule(s), 20 parameter row(s) in 12 family(ies)" in b.output


def _records(path: Path) -> list:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False))


@pytest.mark.parametrize("executor", ["batch", "reference"])
def test_audit_with_bundle_equals_audit_with_pack(compiled, tmp_path, executor):
    a, b = tmp_path / "pack.jsonl", tmp_path / "bundle.jsonl"
    ra = in_checkout("audit", "--rules", "rulesets/demo", CLAIMS, "--out", a, "--executor", executor)
    rb = run("audit", "--rules", compiled, CLAIMS, "--out", b, "--executor", executor)
    assert ra.exit_code == rb.exit_code == 0, ra.output + rb.output
    pack_rows, bundle_rows = _records(a), _records(b)
    assert bundle_rows == pack_rows
    assert all(re.fullmatch(r"rulesets/demo/\w+\.rules:\d+", r["rule_location"]) for r in bundle_rows)
    assert sum(1 for r in bundle_rows if r["outcome"] == "violation") == 13


def _without_timing(response: dict) -> dict:
    response = dict(response)
    engine = dict(response.pop("engine"))
    assert engine.pop("elapsed_us") >= 0
    response["engine"] = engine
    return response


@pytest.mark.parametrize("executor", ["inline", "reference"])
def test_screen_with_bundle_equals_screen_with_pack(compiled, executor):
    ra = run("screen", "--rules", PACK, REQUEST, "--executor", executor)
    rb = run("screen", "--rules", compiled, REQUEST, "--executor", executor)
    assert ra.exit_code == rb.exit_code == 0, ra.output + rb.output
    a, b = _without_timing(json.loads(ra.output)), _without_timing(json.loads(rb.output))
    assert a == b
    assert sorted(r["rule_id"] for r in b["result"]) == ["DEMO_AGE_MIN", "GZ10000301004000"]


def test_screen_with_bundle_and_stage(compiled, tmp_path):
    body = json.loads(REQUEST.read_text(encoding="utf-8"))
    orders = body["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"]
    orders.append({"rx_id": "RX9", "hilist_code": "003310010140000", "hilist_name": "示例诊疗项目", "cnt": 3,
                   "pric": 15, "sumamt": 45, "curr_drord_flag": "1"})
    req = tmp_path / "req.json"
    req.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    for stages, want in ((["事前"], {"DEMO_AGE_MIN", "GZ10000301004000"}),
                         (["事中"], {"DEMO_AGE_MIN", "GZ10000301004000", "DEMO_PRICE_CAP"})):
        outs = []
        for rules in (PACK, compiled):
            args = ["screen", "--rules", rules, req]
            for s in stages:
                args += ["--stage", s]
            r = run(*args)
            assert r.exit_code == 0, r.output
            outs.append(_without_timing(json.loads(r.output)))
        assert outs[0] == outs[1]
        assert {x["rule_id"] for x in outs[1]["result"]} == want


def test_loading_a_bundle_does_not_read_the_rule_files(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(PACK, pack)
    out = tmp_path / "b"
    assert run("compile", pack, "-o", out).exit_code == 0
    expected = _without_timing(json.loads(run("screen", "--rules", pack, REQUEST).output))
    shutil.rmtree(pack)  # rules and knowledge CSVs gone
    assert not pack.exists()
    loaded = load_bundle(out)
    assert len(loaded.ruleset.rules) == 12
    response = Screener(loaded).screen(json.loads(REQUEST.read_text(encoding="utf-8")))
    assert _without_timing(response) == expected
    cli = run("screen", "--rules", out, REQUEST)
    assert cli.exit_code == 0, cli.output
    assert _without_timing(json.loads(cli.output)) == expected
    findings = tmp_path / "f.jsonl"
    assert run("audit", "--rules", out, CLAIMS, "--out", findings).exit_code == 0
    assert sum(1 for r in _records(findings) if r["outcome"] == "violation") == 13


def test_screener_from_path_accepts_a_bundle(compiled):
    request = json.loads(REQUEST.read_text(encoding="utf-8"))
    a = Screener.from_path(PACK).screen(request)
    b = Screener.from_path(compiled).screen(request)
    assert _without_timing(a) == _without_timing(b)


# ---- refusals -----------------------------------------------------------------------------------------


def refused(path: Path, *must_contain: str, commands=("explain", "screen", "audit"), tmp: Path | None = None):
    """Every command that takes a bundle refuses it with one line naming the file and the reason."""
    for command in commands:
        if command == "explain":
            r = run("explain", path)
        elif command == "screen":
            r = run("screen", "--rules", path, REQUEST)
        else:
            r = run("audit", "--rules", path, CLAIMS, "--out", (tmp or path.parent) / "never.parquet")
            assert not ((tmp or path.parent) / "never.parquet").exists()
        assert r.exit_code != 0, (command, r.output)
        assert isinstance(r.exception, SystemExit)
        assert r.stdout == "", (command, r.stdout)
        lines = r.stderr.splitlines()
        assert len(lines) == 1, (command, r.stderr)
        line = lines[0]
        assert line.startswith("error: "), line
        assert str(path) in line, line
        for text in must_contain:
            assert text in line, (text, line)
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    assert str(path) in str(e.value)
    return line


def test_flipped_byte_in_a_family_file_is_refused(copy, tmp_path):
    target = copy / "families" / "5.arrow"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    refused(copy, "families/5.arrow", "corrupt", "SHA-256", tmp=tmp_path)


def test_flipped_byte_in_plan_json_is_refused(copy, tmp_path):
    target = copy / "plan.json"
    text = target.read_text(encoding="utf-8").replace('"DEMO_AGE_MIN"', '"DEMO_AGE_MAX"', 1)
    target.write_text(text, encoding="utf-8")
    refused(copy, "plan.json", "corrupt", tmp=tmp_path)


@pytest.mark.parametrize("rel", ["families/0.arrow", "knowledge/drug_sex.arrow", "plan.json"])
def test_deleted_file_is_refused(copy, tmp_path, rel):
    (copy / rel).unlink()
    refused(copy, rel, "missing", tmp=tmp_path)


@pytest.mark.parametrize("field, value, reason", [
    ("format", "claimaudit-bundle/2", "'claimaudit-bundle/2' is not 'claimaudit-bundle/1'"),
    ("format", None, "bundle format None"),
    ("compiler_version", "9.9.9", "compiled by claimaudit 9.9.9"),
])
def test_edited_manifest_version_is_refused(copy, tmp_path, field, value, reason):
    m = manifest_of(copy)
    m[field] = value
    (copy / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
    line = refused(copy, reason, tmp=tmp_path)
    assert "recompile" in line


def test_manifest_with_edited_file_list_is_refused(copy, tmp_path):
    m = manifest_of(copy)
    m["files"]["plan.json"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
    refused(copy, "manifest.json", "content hash", tmp=tmp_path)


def test_manifest_not_json_is_refused(copy, tmp_path):
    (copy / "manifest.json").write_text('{"format": "claimaudit-bundle/1",\n', encoding="utf-8")
    refused(copy, "manifest.json", "corrupt", tmp=tmp_path)


def test_manifest_not_utf8_is_refused(copy, tmp_path):
    (copy / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    refused(copy, "manifest.json", "corrupt", tmp=tmp_path)


def test_directory_that_is_not_a_bundle_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not rules", encoding="utf-8")
    for args in (["explain", foreign], ["screen", "--rules", foreign, REQUEST],
                 ["audit", "--rules", foreign, CLAIMS, "--out", tmp_path / "never.parquet"]):
        r = run(*args)
        assert r.exit_code != 0, r.output
        assert isinstance(r.exception, SystemExit)
        assert r.stdout == ""
        first = r.stderr.splitlines()[0]
        assert str(foreign) in first and "no .rules files" in first, r.stderr
    assert not (tmp_path / "never.parquet").exists()
    with pytest.raises(BundleError, match="not a bundle"):
        load_bundle(foreign)


def test_bundle_without_manifest_names_the_manifest(copy, tmp_path):
    (copy / "manifest.json").unlink()
    refused(copy, "manifest.json", commands=("explain",), tmp=tmp_path)


def test_edited_manifest_metadata_is_refused(copy, tmp_path):
    m = manifest_of(copy)
    for t in m["knowledge"]:
        if t["name"] == "drug_sex":
            t["match"] = "exact"
    m["ruleset"]["version"] = "1999.01"
    (copy / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
    r = run("screen", "--rules", copy, REQUEST, "--executor", "reference")
    if r.exit_code == 0:  # if it is accepted, it must at least still give the compiled pack's answer
        response = json.loads(r.output)
        assert response["ruleset"]["version"] == "2026.11"
        assert {x["rule_id"] for x in response["result"]} == {"DEMO_AGE_MIN", "GZ10000301004000"}
    else:
        refused(copy, "manifest.json", tmp=tmp_path)


# ---- compile's output directory -------------------------------------------------------------------------


def test_compile_refuses_to_overwrite_a_directory_that_is_not_a_bundle(tmp_path):
    target = tmp_path / "documents"
    target.mkdir()
    precious = target / "precious.txt"
    precious.write_text("keep me", encoding="utf-8")
    r = run("compile", PACK, "-o", target)
    assert precious.read_text(encoding="utf-8") == "keep me"
    assert r.exit_code != 0


def test_compile_replaces_an_existing_bundle(compiled, tmp_path):
    out = tmp_path / "b"
    compile_demo(out)
    (out / "families" / "0.arrow").write_bytes(b"stale")
    compile_demo(out)
    assert manifest_of(out)["content_hash"] == manifest_of(compiled)["content_hash"]
    assert run("explain", out).exit_code == 0
    assert not list(tmp_path.glob(".b.tmp-*"))  # no temporary directory left behind


def test_compile_into_an_existing_file_is_a_clean_error(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "out").write_text("a file", encoding="utf-8")
    result = CliRunner().invoke(main, ["compile", str(PACK), "-o", "out"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith("error: ") and "not a directory" in result.stderr
    assert (work / "out").read_text(encoding="utf-8") == "a file"


def test_compile_into_the_current_empty_directory_works(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(main, ["compile", str(PACK), "-o", "."])
    assert result.exit_code == 0, result.output
    assert (work / "manifest.json").is_file()
