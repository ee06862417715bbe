"""Effective dates — of a rule, and of a knowledge row (role effective_from / effective_to) — are
judged only for lines the rule's key and condition concern, identically in every executor."""
import datetime as dt

import pyarrow as pa

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine

RULES = """
table t from "t.csv" {
  key    code  text match prefix
  column id    text role id
  column from_ date role effective_from
  column to_   date role effective_to
  column limit number
}
rule ONE "逐条写法" {
  result 明确
  effective 2025-01-01
  when med_list_codg startswith "XA" and cnt > 2
  message "m"
}
rule TAB "表写法" {
  result 明确
  effective 2025-01-01
  lookup k = t[med_list_codg]
  when cnt > k.limit
  message "m {k.id}"
}
"""
CSV = "code,id,from_,to_,limit\nXA,P1,,,2\nXB,P2,2026-01-01,,2\nXB,P3,,2025-12-31,5\n"


def _line(i, code, cnt, when):
    line = {n: None for n in CLAIM_FIELDS}
    line.update(feedetl_sn=f"L{i}", mdtrt_id="M", med_list_codg=code, cnt=float(cnt), pric=1.0,
                inscp_scp_amt=float(cnt), fee_ocur_time=when)
    return line


def _all(rs, lines):
    plan = build_plan(rs)
    ref = sorted(f.key() for f in ReferenceEngine(rs).run(lines))
    schema = pa.schema([(n, {"text": pa.string(), "number": pa.float64(), "date": pa.date32(),
                             "datetime": pa.timestamp("us"), "list": pa.list_(pa.string())}[f.type])
                        for n, f in CLAIM_FIELDS.items()])
    engine = BatchEngine(plan)
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=schema))
    batch = sorted(f.key() for f in engine.findings(hits, cols))
    inline = sorted(f.key() for f in Screener(plan, stages=None).screen_lines(lines))
    return ref, batch, inline


def test_effective_dates_of_rules_and_knowledge_rows(tmp_path):
    (tmp_path / "r.rules").write_text(RULES, encoding="utf-8")
    (tmp_path / "t.csv").write_text(CSV, encoding="utf-8")
    rs = load_ruleset(tmp_path)
    assert rs.ok, rs.render_diagnostics()
    d2024, d2025, d2026 = (dt.datetime(y, 6, 1, 9) for y in (2024, 2025, 2026))
    lines = [
        _line(1, "XA1", 3, d2025),   # both rules flag (P1)
        _line(2, "XA1", 3, d2024),   # before the rules take effect: nothing
        _line(3, "XZ9", 9, None),    # no date, but no rule concerns this code: nothing
        _line(4, "XA1", 1, None),    # no date, condition false: nothing
        _line(5, "XA1", 3, None),    # no date, condition true: insufficient data from both rules
        _line(6, "XB1", 3, d2025),   # P2 not yet in force, P3 in force but 3 <= 5: nothing
        _line(7, "XB1", 6, d2025),   # P3 flags; P2 not in force
        _line(8, "XB1", 6, d2026),   # P2 flags; P3 expired
    ]
    ref, batch, inline = _all(rs, lines)
    assert ref == batch == inline
    got = {(k[3], k[2], k[1]) for k in ref}
    assert got == {("L1", "ONE", "violation"), ("L1", "TAB", "violation"),
                   ("L5", "ONE", "insufficient_data"), ("L5", "TAB", "insufficient_data"),
                   ("L7", "TAB", "violation"), ("L8", "TAB", "violation")}
    by_line = {(f.line_id, f.rule_code): f for f in ReferenceEngine(rs).run(lines)}
    assert by_line[("L7", "TAB")].knowledge.point_id == "P3"
    assert by_line[("L8", "TAB")].knowledge.point_id == "P2"


def test_effective_role_columns_must_be_dates(tmp_path):
    (tmp_path / "r.rules").write_text('table t from "t.csv" {\n  key code text match prefix\n'
                                      '  column from_ text role effective_from\n}\n', encoding="utf-8")
    (tmp_path / "t.csv").write_text("code,from_\nXA,2025-01-01\n", encoding="utf-8")
    rs = load_ruleset(tmp_path)
    assert [d.code for d in rs.diagnostics] == ["bad_attribute_value"]
    assert rs.diagnostics[0].span.line == 3
