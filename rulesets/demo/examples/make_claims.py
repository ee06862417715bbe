"""Regenerate the demo pack's example claims from the examples written next to its rules.

Every example becomes one encounter; its lines keep the example's values. The outputs are
committed so a new user can run ``claimaudit audit`` straight away:

    python rulesets/demo/examples/make_claims.py
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine.testing import example_lines

HERE = Path(__file__).parent
_ARROW = {"text": pa.string(), "number": pa.float64(), "date": pa.date32(), "datetime": pa.timestamp("s"),
          "list": pa.list_(pa.string())}


def claim_rows(ruleset) -> list[dict]:
    rows = []
    for r_i, rule in enumerate(ruleset.rules, start=1):
        for e_i, example in enumerate(rule.examples, start=1):
            tag = f"{r_i:02d}{e_i:02d}"
            for line in example_lines(example):
                line = dict(line)
                line["feedetl_sn"] = f"FD{tag}-{line['feedetl_sn']}"
                line["mdtrt_id"] = f"MD{tag}"
                line["psn_no"] = f"P{tag}"
                line["rxno"] = f"RX{tag}"
                line["fixmedins_code"] = line["fixmedins_code"] or "H00000000001"
                line["vali_flag"] = "1"
                line["diag_codes"] = list(line["diag_codes"]) if line["diag_codes"] else None
                rows.append(line)
    return rows


def write_claims(rows: list[dict]) -> None:
    schema = pa.schema([(n, _ARROW[f.type]) for n, f in CLAIM_FIELDS.items()])
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, HERE / "claims.parquet")
    csv_table = table
    for name in (n for n, f in CLAIM_FIELDS.items() if f.type == "list"):
        joined = pa.array([";".join(v) if v else None for v in table[name].to_pylist()], pa.string())
        csv_table = csv_table.set_column(csv_table.schema.get_field_index(name), name, joined)
    pacsv.write_csv(csv_table, HERE / "claims.csv")


def write_request(rows: list[dict]) -> None:
    """A 3101 request: one patient, one encounter, three current orders and one history order."""
    def order(rx_id, code, name, cnt, pric, current, **extra):
        return {"rx_id": rx_id, "rxno": "RX-DEMO-1", "hilist_code": code, "hilist_name": name, "hilist_type": "101",
                "cnt": cnt, "pric": pric, "sumamt": round(cnt * pric, 2), "drord_begn_date": "2025-05-31 10:00:00",
                "drord_dr_codg": "D0001", "drord_dept_codg": "A03", "curr_drord_flag": "1" if current else "0",
                **extra}
    request = {"patient_dtos": [{
        "patn_id": "DEMO-PATIENT-1", "gend": "2", "brdy": "2013-06-01", "curr_mdtrt_id": "MD-DEMO-1",
        "fsi_encounter_dtos": [{
            "mdtrt_id": "MD-DEMO-1", "medins_id": "H00000000001", "medins_lv": "08", "med_type": "11",
            "insutype": "390", "adm_date": "2025-05-31 09:40:00",
            "fsi_diagnose_dtos": [{"dise_codg": "J06.900", "maindise_flag": "1"}],
            "fsi_order_dtos": [
                order("RX1", "XJ01MAZ074A001010100478", "左氧氟沙星片", 1, 18.8, True),
                order("RX2", "XG04CBF036A001010101234", "非那雄胺片", 2, 36.5, True),
                order("RX3", "XJ01CAA040E001010100890", "阿莫西林胶囊", 24, 0.5, True, sin_dos_dscr="0.5g",
                      used_frqu_dscr="tid", prd_days=4),
                order("RX0", "XJ01DDC178B002010100321", "注射用头孢哌酮钠舒巴坦钠", 2, 25, False),
            ]}]}]}
    (HERE / "request.json").write_text(json.dumps(request, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    rs = load_ruleset(HERE.parent)
    assert rs.ok, rs.render_diagnostics()
    rows = claim_rows(rs)
    write_claims(rows)
    write_request(rows)
    print(f"{len(rows)} claim lines, request.json written at {dt.datetime.now():%Y-%m-%d %H:%M}")
