"""Inputs the inline screener's tests share: the shipped packs, their examples as lines, random claim lines
over a pack's own knowledge keys, and 3101 requests (the shipped one, and random ones with odd values)."""
from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from hypothesis import strategies as st

from claimaudit.connectors.claims import coerce_row
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
PACKS = {"demo": ROOT / "rulesets" / "demo", "nhsa": ROOT / "rulesets" / "nhsa",
         "demo_history": ROOT / "rulesets" / "demo_history"}
REQUEST = ROOT / "rulesets" / "demo" / "examples" / "request.json"
ALL_FIELDS = tuple(CLAIM_FIELDS.items())


def example_sets(rs):
    for rule in rs.rules:
        for example in rule.examples:
            yield rule, example_lines(example)


# ---- random lines over a pack's own knowledge keys --------------------------------------------------------

DOSES = ["500mg", "1000mg", "0.5g", "2g", "15mg", "2片", "每次0.5g", "abc", "250 µg", "3盒", "10ml", None]
FREQS = ["qd", "bid", "tid", "q8h", "每日3次", "2次/日", "prn", "st", "Tid", None]
DIAGS = ["I63.900", "I10.x00", "E11.900", "J06.900", "N40.x00", "O24.000", "C18.900", "K21.000", " i63.9 ", ""]
TIMES = [dt.datetime(2023, 12, 31, 9, 30), dt.datetime(2024, 1, 1, 0, 0), dt.datetime(2025, 2, 10, 16, 5),
         dt.datetime(2025, 6, 1, 9, 30, 15), dt.datetime(2026, 3, 1, 8, 0)]
BIRTHS = [dt.date(1950, 3, 1), dt.date(1990, 6, 15), dt.date(2007, 6, 1), dt.date(2013, 6, 1),
          dt.date(2020, 2, 29), dt.date(2025, 5, 20), dt.date(2026, 5, 1)]


def knowledge_codes(rs) -> list:
    """National codes that hit the pack's tables (keys with a suffix, keys alone) and some that do not."""
    keys = sorted({str(row.get(t.key)) for t in rs.tables.values() for row in t.rows if row.get(t.key)})
    rng = random.Random(7)
    picked = rng.sample(keys, min(40, len(keys)))
    return picked + [k + "A001010100123" for k in picked] + ["XZ99ZZZ999A000000000000", "003310010140000"]


def random_line(pick, i: int, codes: list, diags: list) -> dict:
    line = {n: None for n in CLAIM_FIELDS}
    line.update({
        "feedetl_sn": f"L{i}", "mdtrt_id": pick(["M0", "M1"]), "psn_no": "P1", "rxno": "RX1",
        "hilist_name": pick(["药品甲", None]), "med_list_codg": pick(codes),
        "gend": pick(["1", "2", "0", None]), "brdy": pick(BIRTHS + [None]),
        "insutype": pick(["310", "390", "510", None]), "hosp_lv": pick(["01", "02", "08", None]),
        "med_type": pick(["11", "14", "21", "41", None]), "list_type": pick(["101", "102", "201", None]),
        "bilg_dept_codg": pick(["A03", "A15.01", "A07", "0301", None]),
        "fixmedins_code": pick(["H001", "H002"]), "bilg_dr_codg": pick(["D001", None]),
        "fee_ocur_time": pick(TIMES + [None]), "begntime": pick(TIMES + [None]), "endtime": pick(TIMES + [None]),
        "dscg_maindiag_code": pick(diags + [None]),
        "diag_codes": pick([(), ("I10.x00",), ("E11.900", "I63.900"), (" j06.900 ", ""), None]),
        "cnt": pick([0.0, 1.0, 2.0, 4.0, 40.0, 60.0, None]), "pric": pick([0.5, 12.0, 15.0, 3200.0, None]),
        "prd_days": pick([0.0, 3.0, 7.0, 14.0, 31.0, None]), "sin_dos_dscr": pick(DOSES),
        "used_frqu_dscr": pick(FREQS), "hosp_appr_flag": pick(["0", "1", None]),
        "fulamt_ownpay_amt": pick([0.0, 5000.0, None]),
    })
    if line["cnt"] is not None and line["pric"] is not None:
        line["det_item_fee_sumamt"] = line["cnt"] * line["pric"]
        line["inscp_scp_amt"] = pick([line["det_item_fee_sumamt"], None])
    return coerce_row(line)[0]


def pack_pools(rs):
    diag_keys = [str(r.get(t.key)) for t in rs.tables.values() if t.name.startswith("diag") for r in t.rows]
    return knowledge_codes(rs), DIAGS + diag_keys[:20]


# ---- 3101 requests ------------------------------------------------------------------------------------


def demo_request() -> dict:
    return json.loads(REQUEST.read_text(encoding="utf-8"))


def typed(lines: list) -> list:
    """Lines with each value's type, so 1 and 1.0 (or a date and a date-time) never pass as equal."""
    return [[(k, type(v).__name__, v) for k, v in line.items()] for line in lines]


ANY_TEXT = st.sampled_from(["A03", " H001 ", "", "   ", "XJ01CAA040E001010100890", "药品", None])
ANY_NUMBER = st.sampled_from([1, 2.5, 0, -3, "4", " 5.5 ", "1,200", "", "x", None, True, 1e300])
ANY_TIME = st.sampled_from(["2025-05-31 10:00:00", "2025-05-31", "20250531", "2025/05/31 10:00", "2025-05-31T10:00:15",
                         "2025-02-30", "later", "", None, 20250531])
ANY_DATE = st.sampled_from(["2013-06-01", "20130601", "2013/06/01", "2013-06-01 00:00:00", "2013-13-01", "", None])
ANY_FLAG = st.sampled_from(["1", "0", 1, 0, " 1 ", "", None, "yes"])
ORDER_VALUES = (  # keys an order may carry (interface and national names) and the values they may take
    ("hilist_name", ANY_TEXT), ("cnt", ANY_NUMBER), ("pric", ANY_NUMBER), ("sumamt", ANY_NUMBER),
    ("drord_begn_date", ANY_TIME), ("sin_dos_dscr", st.sampled_from(["0.5g", "2片", "3盒", ""])),
    ("used_frqu_dscr", st.sampled_from(["tid", "prn", None])), ("prd_days", ANY_NUMBER),
    ("hosp_appr_flag", ANY_FLAG), ("curr_drord_flag", ANY_FLAG), ("drord_dept_codg", ANY_TEXT),
    ("inscp_scp_amt", ANY_NUMBER), ("det_item_fee_sumamt", ANY_NUMBER), ("fee_ocur_time", ANY_TIME),
    ("med_list_codg", ANY_TEXT), ("feedetl_sn", ANY_TEXT), ("gend", ANY_TEXT))
ENCOUNTER_VALUES = (
    ("medins_id", ANY_TEXT), ("medins_lv", ANY_TEXT), ("med_type", ANY_TEXT), ("insutype", ANY_TEXT),
    ("adm_date", ANY_TIME), ("dscg_main_dise_codg", ANY_TEXT), ("begntime", ANY_TIME), ("hosp_lv", ANY_TEXT),
    ("diag_codes", st.sampled_from(["I10;E11", ["J06.900"], ""])))


def _maybe(draw, d: dict, key: str, values) -> None:
    if draw(st.booleans()):
        d[key] = draw(values)


@st.composite
def requests(draw):
    def order(i: int) -> dict:
        o = {"rx_id": draw(st.sampled_from([f"RX{i}", f"RX{i}", i, "  ", None])),
             "hilist_code": draw(st.sampled_from(["XJ01CAA040E001010100890", "XG04CBF036A001010101234",
                                                  "003310010140000", "", None]))}
        for key, values in ORDER_VALUES:
            _maybe(draw, o, key, values)
        return o

    def encounter(j: int) -> dict:
        e = {"mdtrt_id": f"MD{j}", "fsi_order_dtos": [order(10 * j + i) for i in range(draw(st.integers(1, 4)))]}
        for key, values in ENCOUNTER_VALUES:
            _maybe(draw, e, key, values)
        if draw(st.booleans()):
            e["fsi_diagnose_dtos"] = [{"dise_codg": draw(st.sampled_from(["J06.900", " e11.9 ", "", None, 63])),
                                       "maindise_flag": draw(ANY_FLAG)} for _ in range(draw(st.integers(0, 3)))]
        return e

    patient = {"patn_id": draw(st.sampled_from(["P1", " P2 ", None])),
               "fsi_encounter_dtos": [encounter(j) for j in range(draw(st.integers(1, 2)))]}
    for key, values in (("gend", ANY_TEXT), ("brdy", ANY_DATE), ("insutype", ANY_TEXT), ("med_type", ANY_TEXT)):
        _maybe(draw, patient, key, values)
    doc = {"patient_dtos": [patient]}
    if draw(st.booleans()):
        doc["rule_ids"] = draw(st.sampled_from([["A", "B"], [], None, "A"]))
    return doc
