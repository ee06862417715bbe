"""Local profiles: settings replace rule thresholds, rules go to shadow mode, change severity or are
switched off, exemptions mark the findings they cover; every executor shows the same marks, and a
mistake in the profile is reported with its file and line."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.cli import main
from claimaudit.engine.findings import VIOLATION, screen_response
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo_history"
PROFILE = PACK / "profiles" / "示例市.toml"
from claims_schema import SCHEMA  # noqa: E402


def _example(rs, code, n=0):
    return example_lines(rs.rule(code).examples[n])


def _marks(findings):
    return sorted((f.rule_code, f.line_id, f.outcome, f.shadow, f.exemption, f.profile, f.severity) for f in findings)


def _all_executors(rs, lines):
    plan = build_plan(rs)
    ref = list(ReferenceEngine(rs).run(lines))
    engine = BatchEngine(plan)
    engine.compile_renderers_at = 1  # line-level findings through compiled render programs, marks included
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA))
    batch = engine.findings(hits, cols)
    inline = Screener(plan, stages=None).screen_lines(lines)
    assert _marks(batch) == _marks(ref) and _marks(inline) == _marks(ref)
    return ref


def test_the_shipped_profile_checks_clean():
    rs = load_ruleset(PACK, PROFILE)
    assert rs.ok, rs.render_diagnostics()
    assert rs.profile.label == "示例市医保局本地配置 2026.1"


def test_setting_replaces_the_rules_default():
    plain, local = load_ruleset(PACK), load_ruleset(PACK, PROFILE)
    lines = _example(plain, "GZ10000204001000", 2)  # readmission after 20 days
    assert not [f for f in ReferenceEngine(plain).run(lines) if f.rule_code == "GZ10000204001000"]
    found = [f for f in _all_executors(local, lines) if f.rule_code == "GZ10000204001000"]
    assert [(f.line_id, f.outcome) for f in found] == [("L2", VIOLATION)]


def test_shadow_mode_is_recorded_but_never_shown_to_prescribers():
    rs = load_ruleset(PACK, PROFILE)
    found = _all_executors(rs, _example(rs, "DEMO_DUP_CLASS"))
    dup = [f for f in found if f.rule_code == "DEMO_DUP_CLASS"]
    assert dup and all(f.shadow for f in dup)
    response = screen_response(found, rs, "test", 0.0)
    assert "DEMO_DUP_CLASS" not in {r["rule_id"] for r in response["result"]}
    assert {s["rule_id"] for s in response["shadow"]} == {"DEMO_DUP_CLASS"}


def test_exemption_marks_findings_inside_its_scope_only():
    rs = load_ruleset(PACK, PROFILE)
    lines = _example(rs, "DEMO_DDI")
    inside = [dict(l, med_list_codg=c, fixmedins_code="H001") for l, c in
              zip(lines, ("XB01AAW021A001010101111", "XM01AEB006A001010102222"))]
    outside = [dict(l, fixmedins_code="H002") for l in inside]
    (f_in,) = [f for f in _all_executors(rs, inside) if f.rule_code == "DEMO_DDI"]
    (f_out,) = [f for f in _all_executors(rs, outside) if f.rule_code == "DEMO_DDI"]
    assert f_in.exemption == "抗凝门诊在临床药师监护下联用华法林与布洛芬（示例医保发〔2025〕12号）"
    assert f_out.exemption is None
    assert f_in.to_record()["exemption"] == f_in.exemption and f_in.to_record()["profile"] == rs.profile.label
    assert not screen_response([f_in], rs, "test", 0.0)["result"]


def test_severity_override_and_disabled_rule():
    rs = load_ruleset(PACK, PROFILE)
    assert rs.rule("DEMO_FREQUENT_PURCHASE").severity == "inform"
    lines = _example(rs, "DEMO_HERB_LARGE")
    assert not [f for f in _all_executors(rs, lines) if f.rule_code == "DEMO_HERB_LARGE"]


def _write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_profile_mistakes_name_file_and_line(tmp_path):
    p = _write(tmp_path, '[profile]\nname = "x"\n\n[settings]\nreadmision_days = 30\n\n[rules.DEMO_NOPE]\n'
                         'shadow = true\n\n[rules.DEMO_DDI]\nseverity = "loud"\n\n[[exemptions]]\nrule = "DEMO_DDI"\n'
                         'reason = "r"\n')
    result = CliRunner().invoke(main, ["check", str(PACK), "--profile", str(p)])
    assert result.exit_code == 1
    out = result.output
    assert f"{p}:5:1" in out and "did you mean 'readmission_days'" in out
    assert f"{p}:7:1" in out and "no rule DEMO_NOPE" in out
    assert f"{p}:10:1" in out and "severity 'loud'" in out
    assert f"{p}:13:1" in out and "needs a authority" in out


def test_toml_syntax_error_has_line_and_column(tmp_path):
    p = _write(tmp_path, '[profile]\nname = "x\n')
    result = CliRunner().invoke(main, ["check", str(PACK), "--profile", str(p)])
    assert result.exit_code == 1 and f"{p}:2:" in result.output and "not valid TOML" in result.output


def test_lint_reports_an_exemption_that_matches_nothing(tmp_path):
    p = _write(tmp_path, '[[exemptions]]\nrule = "DEMO_DDX"\nreason = "r"\nauthority = "a"\n')
    result = CliRunner().invoke(main, ["lint", str(PACK), "--profile", str(p), "--json"])
    doc = json.loads(result.output)
    codes = [f["code"] for f in doc["findings"]]
    assert "L007" in codes


def test_audit_with_profile_writes_the_marks(tmp_path):
    rs = load_ruleset(PACK)
    lines = _example(rs, "DEMO_DUP_CLASS")
    claims = tmp_path / "c.parquet"
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(lines, schema=SCHEMA), claims)
    out = tmp_path / "f.jsonl"
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACK), str(claims), "--out", str(out), "--profile",
                                       str(PROFILE)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert any(r["rule_code"] == "DEMO_DUP_CLASS" and r["shadow"] for r in rows)
    assert "shadow mode" in result.output
