"""`claimaudit explain` (families, fallbacks) and `claimaudit audit` with both executors writing the
same findings files."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
CLAIMS = PACK / "examples" / "claims.parquet"

FAMILY_RE = re.compile(r"^family (\d+): (\d+) row\(s\) from (\d+) rule\(s\) \[([^\]]+)\]  key: (.+)$")
HEADER_RE = re.compile(r"^(.*): (\d+) rule\(s\), (\d+) parameter row\(s\) in (\d+) family\(ies\)$")
SUMMARY_RE = re.compile(r"^(\d+) fallback family\(ies\) covering (\d+) rule\(s\): evaluated on every line$")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def parse_explain(text: str) -> dict:
    """explain output -> header numbers, families (id, rows, rules, source, key, codes, fallback), summary."""
    lines = text.rstrip("\n").split("\n")
    header = HEADER_RE.match(lines[0])
    assert header, lines[0]
    summary = SUMMARY_RE.match(lines[-1])
    assert summary, lines[-1]
    families, current = [], None
    for line in lines[1:-1]:
        m = FAMILY_RE.match(line)
        if m:
            current = {"id": int(m[1]), "rows": int(m[2]), "n_rules": int(m[3]), "source": m[4], "key": m[5],
                       "codes": None, "fallback": None, "condition": None}
            families.append(current)
            continue
        assert current is not None and line.startswith("  "), line
        label, _, value = line.strip().partition(":")
        value = value.strip()
        if label == "rules":
            current["codes"] = value.split(", ")
        elif label == "fallback":
            current["fallback"] = value
        elif label == "condition":
            current["condition"] = value
        else:
            assert label in ("scope", "amount", "params"), line
    return {"name": header[1], "rules": int(header[2]), "rows": int(header[3]), "families": int(header[4]),
            "family_list": families, "fallback_families": int(summary[1]), "fallback_rules": int(summary[2])}


# ---- explain on the demo pack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_explain():
    result = run("explain", PACK)
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_lists_every_rule_code_exactly_once(demo_explain):
    rs = load_ruleset(PACK)
    assert rs.ok
    ex = parse_explain(demo_explain)
    listed = [code for fam in ex["family_list"] for code in fam["codes"]]
    assert sorted(listed) == sorted(r.code for r in rs.rules)
    assert len(listed) == len(set(listed)) == 12
    for fam in ex["family_list"]:
        assert len(fam["codes"]) == fam["n_rules"]
        assert fam["condition"]


def test_explain_prints_the_family_count_and_fallback_summary(demo_explain):
    ex = parse_explain(demo_explain)
    assert ex["name"] == "示例规则包 2026.11"
    assert (ex["rules"], ex["rows"], ex["families"]) == (12, 20, 12)
    assert [f["id"] for f in ex["family_list"]] == list(range(12))
    assert sum(f["rows"] for f in ex["family_list"]) == ex["rows"]
    assert (ex["fallback_families"], ex["fallback_rules"]) == (0, 0)
    assert all(f["fallback"] is None for f in ex["family_list"])
    keys = {f["key"] for f in ex["family_list"]}
    assert keys == {"med_list_codg prefix", "med_list_codg exact"}
    price = [f for f in ex["family_list"] if f["codes"] == ["DEMO_PRICE_CAP"]]
    assert len(price) == 1 and price[0]["key"] == "med_list_codg exact" and price[0]["source"] == "table:item_price_cap"
    sex = [f for f in ex["family_list"] if f["codes"] == ["GZ10000301004000"]][0]
    assert sex["rows"] == 3 and sex["source"] == "table:drug_sex"


# ---- a pack with rules that have no code test -----------------------------------------------------------

FALLBACK_PACK = '''
ruleset "回退示例" {
  version "2026.01"
}

rule FB_FEMALE_CNT "女性单次数量" {
  result  明确
  when    gend == "2" and cnt > 2
  message "数量{cnt}"
}

rule FB_MALE_CNT "男性单次数量" {
  result  可疑
  when    gend == "1" and cnt > 10
  message "数量{cnt}"
}

rule FB_KEYED "按编码" {
  result  明确
  when    med_list_codg startswith "XJ01" and cnt > 2
  message "数量{cnt}"
}
'''


@pytest.fixture
def fallback_pack(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "rules.rules").write_text(FALLBACK_PACK, encoding="utf-8")
    result = run("check", pack)
    assert result.exit_code == 0, result.output
    return pack


def test_rule_without_code_test_is_a_fallback_family_with_a_reason(fallback_pack):
    result = run("explain", fallback_pack)
    assert result.exit_code == 0, result.output
    ex = parse_explain(result.output)
    assert (ex["rules"], ex["families"]) == (3, 2)
    fallback = [f for f in ex["family_list"] if f["fallback"]]
    keyed = [f for f in ex["family_list"] if not f["fallback"]]
    assert len(fallback) == 1 and len(keyed) == 1
    fb = fallback[0]
    assert fb["key"] == "every line"
    assert sorted(fb["codes"]) == ["FB_FEMALE_CNT", "FB_MALE_CNT"]  # same template, one family of 2 rows
    assert fb["rows"] == 2
    assert "med_list_codg" in fb["fallback"]
    assert keyed[0]["codes"] == ["FB_KEYED"] and keyed[0]["key"] == "med_list_codg prefix"
    assert (ex["fallback_families"], ex["fallback_rules"]) == (1, 2)


def test_single_fallback_rule(tmp_path):
    (tmp_path / "one.rules").write_text(
        'rule ONLY "仅按性别" {\n  result 明确\n  when gend == "2" and cnt > 5\n  message "m"\n}\n', encoding="utf-8")
    result = run("explain", tmp_path)
    assert result.exit_code == 0, result.output
    ex = parse_explain(result.output)
    assert ex["family_list"][0]["codes"] == ["ONLY"] and ex["family_list"][0]["fallback"]
    assert (ex["fallback_families"], ex["fallback_rules"]) == (1, 1)


def test_explain_shortens_long_rule_lists(tmp_path):
    rules = "\n".join(
        f'rule R{i} "药品{i}" {{\n  result 明确\n  when med_list_codg startswith "XA0{i}" and cnt > {i + 1}\n'
        f'  message "m"\n}}\n' for i in range(7))
    (tmp_path / "many.rules").write_text(rules, encoding="utf-8")
    result = run("explain", tmp_path)
    assert result.exit_code == 0, result.output
    ex = parse_explain(result.output)
    assert ex["families"] == 1
    fam = ex["family_list"][0]
    assert (fam["rows"], fam["n_rules"]) == (7, 7)
    assert fam["codes"] == ["R0", "R1", "R2", "R3", "R4 … (+2)"]


def test_explain_of_a_pack_with_errors_is_refused(tmp_path):
    (tmp_path / "bad.rules").write_text('rule X "x" {\n  result 明确\n  when cnt > \n  message "m"\n}\n',
                                        encoding="utf-8")
    result = run("explain", tmp_path)
    assert result.exit_code == 1
    assert "syntax_error" in result.stderr and result.stdout == ""


# ---- audit: reference and batch write the same findings ---------------------------------------------------


def _sorted_records(path: Path) -> list:
    rows = pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: (r["finding_id"], r["outcome"], repr(sorted(r.items()))))


def audit_both(rules: Path, claims: Path, tmp_path: Path, *extra) -> tuple[list, list]:
    out = {}
    for executor in ("reference", "batch"):
        path = tmp_path / f"{executor}.parquet"
        result = run("audit", "--rules", rules, claims, "--out", path, "--executor", executor, *extra)
        assert result.exit_code == 0, result.output
        assert pq.read_schema(path).names == pq.read_schema(tmp_path / "reference.parquet").names
        out[executor] = _sorted_records(path)
    return out["reference"], out["batch"]


def test_reference_and_batch_write_identical_findings(tmp_path):
    ref, batch = audit_both(PACK, CLAIMS, tmp_path)
    assert batch == ref
    assert sum(1 for r in ref if r["outcome"] == "violation") == 13
    assert any(r["outcome"] == "insufficient_data" for r in ref)
    assert len({r["finding_id"] for r in ref}) == len(ref)  # ids are unique


def test_reference_and_batch_agree_for_every_stage(tmp_path):
    for stage in ("事前", "事中"):
        sub = tmp_path / stage
        sub.mkdir()
        ref, batch = audit_both(PACK, CLAIMS, sub, "--stage", stage)
        assert batch == ref, stage
        codes = {r["rule_code"] for r in ref}
        assert ("DEMO_PRICE_CAP" in codes) == (stage == "事中")  # stages 事中, 事后 only


def test_reference_and_batch_agree_on_fallback_families(fallback_pack, tmp_path):
    ref, batch = audit_both(fallback_pack, CLAIMS, tmp_path)
    assert batch == ref
    flagged = sorted((r["rule_code"], r["feedetl_sn"]) for r in ref if r["outcome"] == "violation")
    assert [sn for code, sn in flagged if code == "FB_MALE_CNT"] == ["FD0401-L1", "FD0402-L1"]  # cnt 60, 40
    assert len([sn for code, sn in flagged if code == "FB_FEMALE_CNT"]) == 7  # the women's lines with cnt 3
    assert any(code == "FB_KEYED" for code, _ in flagged)


def test_batch_reads_only_needed_columns_yet_quarantines_like_the_reference(tmp_path):
    """The batch audit reads a Parquet file's needed columns only; a claim field stored as text that does
    not read (endtime: no demo rule reads it) still quarantines its row as the reference's row reader does,
    and the findings and quarantine files are the same."""
    import pyarrow as pa
    from claimaudit.engine.batch import BatchEngine
    from claimaudit.engine.plan import build_plan
    table = pq.read_table(CLAIMS)
    endtime = [None if v is None else v.isoformat(sep=" ") for v in table.column("endtime").to_pylist()]
    endtime[3] = "not a time"
    table = table.set_column(table.column_names.index("endtime"), "endtime", pa.array(endtime, pa.string()))
    claims = tmp_path / "claims.parquet"
    pq.write_table(table, claims)
    engine = BatchEngine(build_plan(load_ruleset(PACK)), stages={"事后"})
    types = dict(zip(table.column_names, table.schema.types))
    chosen = engine.columns_to_read(types)
    assert "endtime" in chosen and "fixmedins_name" not in chosen and "med_list_codg" in chosen
    ref, batch = audit_both(PACK, claims, tmp_path)
    assert batch == ref and len(ref) > 10
    quarantined = {e: pq.read_table(tmp_path / f"{e}.quarantine.parquet").to_pylist() for e in ("reference", "batch")}
    assert quarantined["batch"] == quarantined["reference"]
    assert any(q["row"] == 4 and q["field"] == "endtime" for q in quarantined["batch"])
