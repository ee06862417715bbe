"""Bad input ends with a clear message and an exit status, never a traceback; nothing prints patient ids."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from claimaudit.connectors.claims import needed_columns
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main

DEMO = Path(__file__).resolve().parent.parent / "rulesets" / "demo"
PSN_NO = "P-SECRET-4471"  # a patient identifier that must never reach the console
BAD_BRDY = "1975-13-45"  # birth dates identify patients too

# Every claim column the demo pack reads at 事后, plus identifiers.
COLUMNS = ["feedetl_sn", "psn_no", "mdtrt_id", "gend", "brdy", "insutype", "med_type", "hosp_lv", "fee_ocur_time",
           "med_list_codg", "hilist_name", "cnt", "pric", "inscp_scp_amt", "prd_days", "sin_dos_dscr",
           "used_frqu_dscr", "bilg_dept_codg", "dscg_maindiag_code"]
# Columns demo rules added later may read: present, empty.
COLUMNS += sorted(set(needed_columns(load_ruleset(DEMO).rules)) - set(COLUMNS))
MALE_ONLY_DRUG = "XG04CBF036A001010101234"  # demo rule GZ10000301004000 flags it for women


def claim(**changes) -> dict:
    row = dict(feedetl_sn="F1", psn_no=PSN_NO, mdtrt_id="M1", gend="2", brdy="1975-04-12", insutype="310",
               med_type="11", hosp_lv="02", fee_ocur_time="2025-03-01 09:30:00", med_list_codg=MALE_ONLY_DRUG,
               hilist_name="非那雄胺片", cnt="2", pric="36.5", inscp_scp_amt="73", prd_days="7", sin_dos_dscr="5mg",
               used_frqu_dscr="qd", bilg_dept_codg="A03", dscg_maindiag_code="I10")
    row.update(changes)
    return row


def write_claims(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in columns}), path)
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    return path


def invoke(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def audit(claims: Path, out: Path):
    result = invoke("audit", "--rules", DEMO, claims, "--out", out)
    assert PSN_NO not in result.output
    assert BAD_BRDY not in result.output
    return result


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)


# ---- rule files and knowledge tables ---------------------------------------------------------------

TABLE_RULES = """\
table 限价表 from "knowledge/限价.csv" {
  key    code      text match exact
  column max_price number
  column text      text role text
}
"""


def test_malformed_rule_file_check(tmp_path):
    f = tmp_path / "坏.rules"
    f.write_text('rule R1 "名" {\n  result 明确\n  when cnt = = 1\n', encoding="utf-8")
    result = invoke("check", f)
    assert result.exit_code == 1
    assert f"{f}:3:12: error[syntax_error]: unexpected '='" in result.output
    assert "hint: comparison is written '=='" in result.output
    assert "Token(" not in result.output and "$END" not in result.output


def test_malformed_rule_file_refuses_audit(tmp_path):
    f = tmp_path / "坏.rules"
    f.write_text('rule R1 "名" {\n  result 明确\n', encoding="utf-8")
    claims = write_claims(tmp_path / "claims.csv", [claim()])
    result = invoke("audit", "--rules", f, claims, "--out", tmp_path / "out.csv")
    assert result.exit_code == 1
    assert "error[syntax_error]: the file ends too early" in result.output
    assert f"1 error(s) in {f}" in result.output
    assert not (tmp_path / "out.csv").exists()


def test_rule_file_not_utf8(tmp_path):
    f = tmp_path / "gbk.rules"
    f.write_bytes('rule R1 "超限价" {\n}\n'.encode("gbk"))
    result = invoke("check", f)
    assert result.exit_code == 1
    assert f"{f}:1:1: error[syntax_error]: file is not UTF-8 text" in result.output


def test_rule_file_with_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.rules"
    f.write_text('\ufeffrule R1 "名" {\n  result 明确\n  when cnt > 1\n  message "x"\n}\n', encoding="utf-8")
    result = invoke("check", f)
    assert result.exit_code == 0, result.output
    assert "1 rule(s)" in result.output


def test_knowledge_table_missing_declared_column(tmp_path):
    (tmp_path / "t.rules").write_text(TABLE_RULES, encoding="utf-8")
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "限价.csv").write_text("code,text\nA001,x\n", encoding="utf-8")
    result = invoke("check", tmp_path)
    assert result.exit_code == 1
    assert "error[table_missing_column]" in result.output
    assert "'knowledge/限价.csv' has no column 'max_price'" in result.output


def test_knowledge_table_cell_of_wrong_type(tmp_path):
    (tmp_path / "t.rules").write_text(TABLE_RULES, encoding="utf-8")
    (tmp_path / "knowledge").mkdir()
    csv_path = tmp_path / "knowledge" / "限价.csv"
    csv_path.write_text("code,max_price,text\nA001,12.5,好\nA002,十二元,坏\n", encoding="utf-8")
    result = invoke("check", tmp_path)
    assert result.exit_code == 1
    assert f"{csv_path.resolve()}:3:1: error[table_bad_value]: 限价.csv row 3, column 'max_price': " \
           "'十二元' is not a number" in result.output


# ---- claims files (audit) ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, dropped", [(".csv", "med_list_codg"), (".parquet", "cnt")])
def test_claims_missing_needed_field(tmp_path, suffix, dropped):
    claims = write_claims(tmp_path / f"claims{suffix}", [claim()], [c for c in COLUMNS if c != dropped])
    result = audit(claims, tmp_path / "out.csv")
    assert result.exit_code == 2
    assert f"error: {claims}: missing column(s) '{dropped}' (needed by " in result.output
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_malformed_values_are_quarantined_and_the_rest_audited(tmp_path, suffix):
    rows = [claim(),  # a woman with a men-only drug: one finding
            claim(feedetl_sn="F2", cnt="abc"),
            claim(feedetl_sn="F3", brdy=BAD_BRDY),
            claim(feedetl_sn="F4", fee_ocur_time="2025-02-30 10:00:00"),
            claim(feedetl_sn="F5", gend="1")]  # a man: no finding
    claims = write_claims(tmp_path / f"claims{suffix}", rows)
    out = tmp_path / "out.csv"
    result = audit(claims, out)
    assert result.exit_code == 0, result.output
    assert "2 line(s) audited" in result.output
    assert "3 row(s) quarantined" in result.output
    for row, field in ((2, "cnt"), (3, "brdy"), (4, "fee_ocur_time")):
        assert f"row {row}, field {field}:" in result.output
    assert "value 'abc' is not a number" in result.output

    quarantine = read_table(tmp_path / "out.quarantine.csv").to_pylist()
    assert [(q["row"], q["field"]) for q in quarantine] == [(2, "cnt"), (3, "brdy"), (4, "fee_ocur_time")]
    assert all(q["reason"] for q in quarantine)
    assert all(PSN_NO not in json.dumps(q, ensure_ascii=False, default=str) for q in quarantine)

    findings = read_table(out).to_pylist()
    assert [(f["feedetl_sn"], f["rule_code"], f["outcome"]) for f in findings] == [
        ("F1", "GZ10000301004000", "violation")]


def test_ragged_csv_row_is_named_without_its_content(tmp_path):
    header = ",".join(COLUMNS)
    good = ",".join(claim().get(c, "") for c in COLUMNS)
    claims = tmp_path / "claims.csv"
    claims.write_text(f"{header}\n{good}\n{good},多余\n", encoding="utf-8")
    result = audit(claims, tmp_path / "out.csv")
    assert result.exit_code == 2
    n = len(COLUMNS)
    assert f"error: {claims}: cannot read: line 3 has {n + 1} fields but the header has {n}" in result.output
    assert "非那雄胺片" not in result.output  # no row content, it carries patient data


def test_claims_not_utf8(tmp_path):
    header = ",".join(COLUMNS)
    good = ",".join(claim().get(c, "") for c in COLUMNS)
    claims = tmp_path / "claims.csv"
    claims.write_bytes(f"{header}\n{good}\n".encode("gbk"))
    result = audit(claims, tmp_path / "out.csv")
    assert result.exit_code == 2
    assert f"error: {claims}: cannot read: the file is not UTF-8 text" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".txt"])
def test_claims_file_that_cannot_be_read(tmp_path, suffix):
    claims = tmp_path / f"claims{suffix}"
    claims.write_bytes(b"" if suffix != ".parquet" else b"PAR1 not really")
    result = audit(claims, tmp_path / "out.csv")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {claims}: cannot read: ")


def test_claims_file_missing_or_of_unknown_type(tmp_path):
    result = audit(tmp_path / "nope.csv", tmp_path / "out.csv")
    assert result.exit_code == 2 and f"error: {tmp_path / 'nope.csv'}: no such file" in result.output
    xlsx = tmp_path / "claims.xlsx"
    xlsx.write_bytes(b"PK")
    result = audit(xlsx, tmp_path / "out.csv")
    assert result.exit_code == 2 and "unsupported file type '.xlsx'" in result.output


@pytest.mark.parametrize("suffix, out_suffix", [(".csv", ".csv"), (".parquet", ".parquet"), (".csv", ".jsonl")])
def test_empty_claims_file_gives_empty_findings(tmp_path, suffix, out_suffix):
    claims = write_claims(tmp_path / f"claims{suffix}", [])
    out = tmp_path / f"findings{out_suffix}"
    result = audit(claims, out)
    assert result.exit_code == 0, result.output
    assert "0 line(s) audited" in result.output
    assert out.exists()
    if out_suffix == ".jsonl":
        assert out.read_text(encoding="utf-8") == ""
    else:
        table = read_table(out)
        assert table.num_rows == 0
        assert {"finding_id", "rule_code", "feedetl_sn", "amount"} <= set(table.column_names)
    assert not (tmp_path / f"findings.quarantine{out_suffix}").exists()


def test_unsupported_output_type(tmp_path):
    claims = write_claims(tmp_path / "claims.csv", [claim()])
    result = audit(claims, tmp_path / "out.xlsx")
    assert result.exit_code == 2
    assert "unsupported output type '.xlsx'" in result.output


# ---- screen requests ----------------------------------------------------------------------------


def request(**order_changes) -> dict:
    second = {"rx_id": "R2", "hilist_code": MALE_ONLY_DRUG, "hilist_name": "非那雄胺片", "cnt": 1, "pric": 36.5,
              "sumamt": 36.5}
    second.update(order_changes)
    return {"patient_dtos": [{
        "patn_id": PSN_NO, "gend": "2", "brdy": "1975-04-12",
        "fsi_encounter_dtos": [{
            "mdtrt_id": "M1", "med_type": "11", "adm_date": "2025-03-01 09:30:00",
            "fsi_diagnose_dtos": [{"dise_codg": "E11.900", "maindise_flag": "1"}],
            "fsi_order_dtos": [
                {"rx_id": "R1", "hilist_code": "XA10BAE098A001010102233", "cnt": 1, "pric": 12, "sumamt": 12},
                second,
            ]}]}]}


def screen(tmp_path: Path, body: str | dict, encoding="utf-8"):
    path = tmp_path / "request.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body, ensure_ascii=False), encoding=encoding)
    result = invoke("screen", "--rules", DEMO, path)
    assert PSN_NO not in result.output
    return path, result


def test_valid_request_is_screened(tmp_path):
    _, result = screen(tmp_path, request())
    assert result.exit_code == 0, result.output
    response = json.loads(result.output)
    assert [r["rule_id"] for r in response["result"]] == ["GZ10000301004000"]


def test_request_with_byte_order_mark(tmp_path):
    _, result = screen(tmp_path, "\ufeff" + json.dumps(request()))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["result"]


def test_request_not_json(tmp_path):
    path, result = screen(tmp_path, '{"patient_dtos": [\n  {"patn_id": "x",}\n]}')
    assert result.exit_code == 2
    assert f"error: {path}:2:19: not valid JSON" in result.output


def test_request_empty(tmp_path):
    path, result = screen(tmp_path, "")
    assert result.exit_code == 2
    assert f"error: {path}:1:1: not valid JSON" in result.output


def test_request_wrong_typed_order_field(tmp_path):
    _, result = screen(tmp_path, request(cnt="abc"))
    assert result.exit_code == 2
    assert "error: patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].cnt: value 'abc' is not a number" \
        in result.output


def test_request_wrong_typed_field_given_by_national_name(tmp_path):
    """An order may carry national claim names; the path names the key the request used."""
    _, result = screen(tmp_path, request(fee_ocur_time="2025-02-30"))
    assert result.exit_code == 2
    assert "error: patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].fee_ocur_time: " in result.output


def test_request_wrong_typed_encounter_field(tmp_path):
    body = request()
    enc = body["patient_dtos"][0]["fsi_encounter_dtos"][0]
    enc["begntime"] = "not a time"
    _, result = screen(tmp_path, body)
    assert result.exit_code == 2
    assert "error: patient_dtos[0].fsi_encounter_dtos[0].begntime: " in result.output
    del enc["begntime"]
    enc["adm_date"] = "2025-13-01"
    _, result = screen(tmp_path, body)
    assert "error: patient_dtos[0].fsi_encounter_dtos[0].adm_date: " in result.output


def test_request_wrong_typed_identifier_is_not_echoed(tmp_path):
    body = request()
    body["patient_dtos"][0]["brdy"] = BAD_BRDY
    _, result = screen(tmp_path, body)
    assert result.exit_code == 2
    assert "error: patient_dtos[0].brdy: value is not a date" in result.output
    assert BAD_BRDY not in result.output


@pytest.mark.parametrize("body, message", [
    ([], "the request must be a JSON object"),
    ({"patient_dtos": {}}, "request.patient_dtos: must be a list, got dict"),
    ({}, "request.patient_dtos: missing"),
    ({"patient_dtos": [{"fsi_encounter_dtos": [{}]}]}, "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos: missing"),
    ({"patient_dtos": [{"fsi_encounter_dtos": [{"fsi_order_dtos": ["x"]}]}]},
     "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0]: must be an object"),
])
def test_request_wrong_shape(tmp_path, body, message):
    _, result = screen(tmp_path, body)
    assert result.exit_code == 2
    assert message in result.output
