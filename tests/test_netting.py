"""Invalid lines are set aside and refunds net out before any rule runs, the same for every executor;
nothing is dropped without a row and a reason."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from claimaudit.connectors.netting import net_table
from claimaudit.engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "rulesets" / "demo" / "examples" / "claims.csv"


def _table(rows):
    return pa.table({k: [r.get(k) for r in rows] for k in
                     ("feedetl_sn", "init_feedetl_sn", "vali_flag", "cnt", "det_item_fee_sumamt", "inscp_scp_amt")})


def test_partial_refund_nets_quantity_and_amounts():
    t = _table([{"feedetl_sn": "A", "cnt": 4.0, "det_item_fee_sumamt": 40.0, "inscp_scp_amt": 40.0},
                {"feedetl_sn": "R", "init_feedetl_sn": "A", "cnt": -1.0, "det_item_fee_sumamt": -10.0,
                 "inscp_scp_amt": -10.0}])
    out, rows, aside = net_table(t)
    assert out.column("feedetl_sn").to_pylist() == ["A"]
    assert out.column("cnt").to_pylist() == [3.0] and out.column("inscp_scp_amt").to_pylist() == [30.0]
    assert list(rows) == [1]
    assert [(a.row, a.field, a.feedetl_sn) for a in aside] == [(2, "init_feedetl_sn", "R")]
    assert "netted into line A" in aside[0].reason


def test_full_refund_orphan_refund_and_invalid_lines_are_set_aside_with_reasons():
    t = _table([{"feedetl_sn": "A", "cnt": 2.0, "inscp_scp_amt": 20.0},
                {"feedetl_sn": "B", "cnt": 1.0, "vali_flag": "0"},
                {"feedetl_sn": "C", "cnt": 1.0, "vali_flag": "1"},
                {"feedetl_sn": "R1", "init_feedetl_sn": "A", "cnt": -2.0, "inscp_scp_amt": -20.0},
                {"feedetl_sn": "R2", "init_feedetl_sn": "ZZZ", "cnt": -1.0}])
    out, rows, aside = net_table(t)
    assert out.column("feedetl_sn").to_pylist() == ["C"] and list(rows) == [3]
    reasons = {a.feedetl_sn: a.reason for a in aside}
    assert set(reasons) == {"A", "B", "R1", "R2"}
    assert "refunded in full" in reasons["A"]
    assert "vali_flag = 0" in reasons["B"]
    assert "not in this input" in reasons["R2"]


def test_text_columns_from_csv_are_netted_and_a_malformed_cell_is_left_for_the_reader():
    t = pa.table({"feedetl_sn": ["A", "R", "B", "R2"], "init_feedetl_sn": [None, "A", None, "B"],
                  "cnt": ["3", "-1", "x", "-1"], "inscp_scp_amt": ["30", "-10", "5", "-5"]})
    out, _, aside = net_table(t)
    assert out.column("cnt").to_pylist() == ["2.0", "x"]  # B's malformed count is not touched
    assert out.column("inscp_scp_amt").to_pylist() == ["20.0", "5.0"]
    assert len(aside) == 2


@pytest.mark.parametrize("executor", ["batch", "reference"])
def test_audit_nets_refunds_and_reports_rows_not_audited(tmp_path, executor):
    with CLAIMS.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    flagged = next(r for r in rows if r["feedetl_sn"] == "FD0101-L1")  # 奥扎格雷 for hypertension: 90 yuan
    refund = dict(flagged, feedetl_sn="FD0101-R1", init_feedetl_sn="FD0101-L1", cnt="-1",
                  det_item_fee_sumamt="-45", inscp_scp_amt="-45")
    voided = dict(flagged, feedetl_sn="FD0101-V1", vali_flag="0")
    path = tmp_path / "claims.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows + [refund, voided])
    out, quarantine = tmp_path / "f.jsonl", tmp_path / "q.jsonl"
    result = CliRunner().invoke(main, ["audit", "--rules", str(ROOT / "rulesets" / "demo"), str(path), "--out",
                                       str(out), "--quarantine", str(quarantine), "--executor", executor])
    assert result.exit_code == 0, result.output
    findings = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    ind = [f for f in findings if f["feedetl_sn"] == "FD0101-L1" and f["rule_code"] == "GZ10000101008000"]
    assert [f["amount"] for f in ind] == [45.0]  # the net in-scope amount
    assert not [f for f in findings if f["feedetl_sn"] in ("FD0101-R1", "FD0101-V1")]
    aside = {json.loads(x)["feedetl_sn"]: json.loads(x) for x in quarantine.read_text(encoding="utf-8").splitlines()}
    assert aside["FD0101-R1"]["row"] == len(rows) + 1 and aside["FD0101-V1"]["row"] == len(rows) + 2
    assert "not audited" in result.output


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_columnar_netting_equals_the_value_by_value_netting(data):
    """Netting a column at a time (numeric columns) sets aside the same lines with the same reasons and
    gives the same netted values as netting value by value; it declines only refund chains."""
    from claimaudit.connectors import netting
    n = data.draw(st.integers(1, 14))
    ids = data.draw(st.lists(st.sampled_from(["A", "B", "C", " A", "D\u3000", "", None, "E", "F"]),
                             min_size=n, max_size=n))
    origs = data.draw(st.lists(st.sampled_from([None, None, "A", "B", "C", "Z", " ", "E"]), min_size=n, max_size=n))
    number = st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.0, 2.5, -1.0, -2.5, 4.0, 1e-10]))
    table = pa.table({"feedetl_sn": ids, "init_feedetl_sn": origs,
                      "cnt": pa.array(data.draw(st.lists(number, min_size=n, max_size=n)), pa.float64()),
                      "inscp_scp_amt": pa.array(data.draw(st.lists(number, min_size=n, max_size=n)), pa.float64()),
                      "det_item_fee_sumamt": pa.array(data.draw(st.lists(st.one_of(st.none(), st.integers(-9, 9)),
                                                                         min_size=n, max_size=n)), pa.int64())})
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    keep_a, keep_b, aside_a, aside_b = keep.copy(), keep.copy(), {}, {}
    sn, orig = netting._trimmed(table.column("feedetl_sn")), netting._trimmed(table.column("init_feedetl_sn"))
    columnar = netting._net_refunds_columnar(table, keep_a, aside_a, sn, orig, netting._refund_rows(sn, orig, keep))
    by_value = netting._net_refunds(table, netting._text(table, "feedetl_sn"), keep_b, aside_b)
    if columnar is None:  # declined: some refund is itself refunded
        return
    assert list(keep_a) == list(keep_b) and aside_a == aside_b
    for c in ("cnt", "inscp_scp_amt", "det_item_fee_sumamt"):
        a, b = columnar.column(c).to_pylist(), by_value.column(c).to_pylist()
        assert [repr(x) for x in a] == [repr(x) for x in b], c
