"""Units, quantities and dose text: conversion, parsing, and a dose exactly at its limit."""
import datetime as dt

import pyarrow as pa
import pytest

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.dsl.units import make_quantity, parse_frequency, parse_quantity, quantize
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine


@pytest.mark.parametrize("text,base,dim", [("0.5g", 500.0, "mass"), ("500 mg", 500.0, "mass"), ("250µg", 0.25, "mass"),
                                           ("每次0.5g", 500.0, "mass"), ("10ml", 10.0, "volume"), ("2片", 2.0, "count:片"),
                                           ("1万U", 10000.0, "iu")])
def test_parse_quantity(text, base, dim):
    q = parse_quantity(text)
    assert (q.base_value, q.dimension) == (base, dim)


@pytest.mark.parametrize("text", ["abc", "", "2 boxes", None])
def test_unreadable_quantity_is_none(text):
    assert parse_quantity(text) is None


@pytest.mark.parametrize("text,per_day", [("qd", 1), ("BID", 2), ("tid", 3), ("q8h", 3), ("每日3次", 3), ("2次/日", 2),
                                          ("每天两次", 2), ("qod", 0.5), ("prn", None), ("st", None), ("", None)])
def test_parse_frequency(text, per_day):
    assert parse_frequency(text) == per_day


def test_quantize_snaps_binary_noise_and_keeps_real_values():
    assert 100 * 0.001 * 3 != 0.3  # the problem: 0.30000000000000004
    assert quantize(100 * 0.001 * 3) == 0.3
    assert make_quantity(300, "µg").base_value == 0.3
    assert quantize(0.3000001) == 0.3000001  # a real difference of 100 pg stays
    assert quantize(2000.0) == 2000.0


def test_dose_exactly_at_the_limit_is_not_flagged(tmp_path):
    (tmp_path / "r.rules").write_text('''
rule D "超日剂量" {
  result 可疑
  when   med_list_codg startswith "XA" and daily_dose > 0.3 mg
  message "{daily_dose}"
  amount inscp_scp_amt * (daily_dose - 0.3 mg) / daily_dose
}
''', encoding="utf-8")
    rs = load_ruleset(tmp_path)
    assert rs.ok, rs.render_diagnostics()
    lines = []
    for i, (dose, freq) in enumerate([("100µg", "tid"), ("0.1mg", "tid"), ("101µg", "tid"), ("150µg", "bid")]):
        line = {n: None for n in CLAIM_FIELDS}
        line.update(feedetl_sn=f"L{i}", mdtrt_id="M", med_list_codg="XA1", cnt=1.0, pric=10.0, inscp_scp_amt=10.0,
                    sin_dos_dscr=dose, used_frqu_dscr=freq, fee_ocur_time=dt.datetime(2025, 1, 1))
        lines.append(line)
    ref = sorted(f.key() for f in ReferenceEngine(rs).run(lines))
    plan = build_plan(rs)
    engine = BatchEngine(plan)
    schema = pa.schema([(n, {"text": pa.string(), "number": pa.float64(), "date": pa.date32(),
                             "datetime": pa.timestamp("us"), "list": pa.list_(pa.string())}[f.type])
                        for n, f in CLAIM_FIELDS.items()])
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=schema))
    assert sorted(f.key() for f in engine.findings(hits, cols)) == ref
    assert sorted(f.key() for f in Screener(plan, stages=None).screen_lines(lines)) == ref
    assert [k[3] for k in ref] == ["L2"]  # only 303 µg a day is over 0.3 mg
    assert [k[5] for k in ref] == [0.1]  # 10 × (0.303 − 0.3) / 0.303
