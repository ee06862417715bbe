"""End to end through the CLI on the shipped demo pack: check, test, audit (Parquet and CSV), screen."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
EXAMPLES = PACK / "examples"


@pytest.fixture(scope="module")
def ruleset():
    rs = load_ruleset(PACK)
    assert rs.ok, rs.render_diagnostics()
    return rs


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_check_pack_is_clean():
    result = _run("check", PACK)
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_test_pack_passes_with_full_coverage(ruleset):
    result = _run("test", PACK)
    assert result.exit_code == 0, result.output
    n_examples = sum(len(r.examples) for r in ruleset.rules)
    assert f"{n_examples} passed, 0 failed" in result.output
    assert f"{len(ruleset.rules)}/{len(ruleset.rules)} rules have examples (100%)" in result.output


def _promised(ruleset):
    """(rule code, claim line id) pairs the examples promise, and the ones they promise are clean."""
    flagged, clean = set(), set()
    for r_i, rule in enumerate(ruleset.rules, start=1):
        for e_i, ex in enumerate(rule.examples, start=1):
            for line in ex.lines:
                key = (rule.code, f"FD{r_i:02d}{e_i:02d}-{line.label}")
                (flagged if line.label in ex.expect_flagged else clean).add(key)
    return flagged, clean


@pytest.mark.parametrize("claims", ["claims.parquet", "claims.csv"])
def test_audit_finds_what_the_examples_promise(ruleset, claims, tmp_path):
    out = tmp_path / "findings.parquet"
    result = _run("audit", "--rules", PACK, EXAMPLES / claims, "--out", out)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    violations = {(r["rule_code"], r["feedetl_sn"]) for r in rows if r["outcome"] == "violation"}
    flagged, clean = _promised(ruleset)
    assert flagged <= violations
    assert not (clean & violations)
    # every finding explains itself
    for r in rows:
        if r["outcome"] == "violation":
            assert r["rule_name"] and r["rule_version"] == "2026.11" and r["message"]
            assert r["knowledge_text"], r
            assert r["amount"] is not None and "=" in r["amount_formula"]
        else:
            assert r["reason"]
    assert "P0101" not in result.output  # no patient identifier on the console


def test_audit_amounts_follow_the_formula(tmp_path):
    out = tmp_path / "f.jsonl"
    assert _run("audit", "--rules", PACK, EXAMPLES / "claims.parquet", "--out", out).exit_code == 0
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    dose = [r for r in rows if r["rule_code"] == "DEMO_DAILY_DOSE" and r["outcome"] == "violation"]
    assert {r["amount"] for r in dose} == {20.0}
    assert any("daily_dose − k.max_daily_dose" in r["amount_formula"] for r in dose)


def test_screen_request_returns_3101_findings():
    result = _run("screen", "--rules", PACK, EXAMPLES / "request.json")
    assert result.exit_code == 0, result.output
    resp = json.loads(result.output)
    by_rule = {r["rule_id"]: r for r in resp["result"]}
    assert set(by_rule) == {"DEMO_AGE_MIN", "GZ10000301004000"}
    sex = by_rule["GZ10000301004000"]
    assert sex["vola_cont"] == "药品【非那雄胺片】限男性使用，患者性别与限定性别（男性）不符"
    assert sex["judge_result_detail_dtos"] == [{"rx_id": "RX2", "vola_item_type": "1"}]
    assert sex["sev_deg"] == "1" and sex["result_type"] == "明确" and sex["vola_amt"] == 73.0
    assert sex["knowledge"]["text"] == "限男性使用" and sex["knowledge"]["point_id"] == "SEX-0001"
    # the history order (curr_drord_flag 0) is never flagged, though it would break DEMO_HOSP_LV
    assert all(d["rx_id"] != "RX0" for r in resp["result"] for d in r["judge_result_detail_dtos"])
    assert "DEMO-PATIENT-1" not in json.dumps(resp["result"], ensure_ascii=False)


def test_screen_reads_stdin():
    text = (EXAMPLES / "request.json").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["screen", "--rules", str(PACK), "-"], input=text)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["result"]) == 2


def test_every_command_and_option_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, cmd in main.commands.items():
        assert f"claimaudit {name}" in readme, f"command {name} is not in the README"
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in readme, f"option {opt} of {name} is not in the README"


def test_example_diagnoses_written_as_text_are_split(tmp_path):
    (tmp_path / "r.rules").write_text('''
rule R1 "限脑梗死" {
  result 可疑
  when   med_list_codg startswith "XB01ACA056" and not has_diag({"I63"})
  message "m"
  example "文本写法的诊断列表" {
    encounter { begntime: 2025-01-01T08:00, diag_codes: "I10.x00;I63.900" }
    line L1 { med_list_codg: "XB01ACA056B002020101763", cnt: 1, pric: 1 }
    expect none
  }
  example "不含脑梗死" {
    encounter { begntime: 2025-01-01T08:00, diag_codes: "I10.x00，E11.900" }
    line L1 { med_list_codg: "XB01ACA056B002020101763", cnt: 1, pric: 1 }
    expect flagged L1
  }
}
''', encoding="utf-8")
    result = _run("test", tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output


def test_audit_turns_off_numpy_huge_page_advice(tmp_path):
    """A batch audit process stops numpy advising huge pages (engine/memory.py); screening leaves it alone."""
    import numpy as np
    setter = np._core.multiarray._set_madvise_hugepage  # the switch advise_plain_pages uses must exist
    was = setter(True)
    try:
        result = CliRunner().invoke(main, ["audit", "--rules", str(PACK), str(EXAMPLES / "claims.parquet"), "--out",
                                           str(tmp_path / "f.parquet")])
        assert result.exit_code == 0, result.output
        assert setter(True) is False  # the audit left it off
    finally:
        setter(was)


def test_audit_takes_arrow_buffers_from_a_plain_page_allocator(tmp_path):
    """A batch audit process takes Arrow's buffers from jemalloc or the system allocator, not mimalloc (its huge
    pages cost seconds of faults on a 10M-line read: engine/memory.py), unless ARROW_DEFAULT_MEMORY_POOL
    chose the pool: each case in a process of its own, as the setting is process-wide."""
    code = ("import sys, pyarrow as pa\n"
            "from claimaudit.engine.cli import main\n"
            "try:\n"
            "    main(['audit', '--rules', sys.argv[1], sys.argv[2], '--out', sys.argv[3]])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(pa.default_memory_pool().backend_name)\n")
    args = [sys.executable, "-c", code, str(PACK), str(EXAMPLES / "claims.parquet"), str(tmp_path / "f.parquet")]
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()[-1]
    assert chosen in ("jemalloc", "system")
    mine = subprocess.run(args, env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}, capture_output=True, text=True,
                          check=True).stdout.split()[-1]
    assert mine == "mimalloc"  # the user's choice stands
