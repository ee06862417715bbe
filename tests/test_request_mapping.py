"""The fast 3101 mapping (connectors.request.RequestMapper) gives exactly what ``request_lines`` gives —
the same typed lines (values and their types, key order), current orders and rule ids — or the same
RequestError naming the same JSON path; and regular requests really take the fast path."""
from __future__ import annotations

import copy
import datetime as dt
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings

from claimaudit.connectors.request import RequestError, RequestMapper, request_lines
from claimaudit.engine.inline import Screener

from inline_cases import ALL_FIELDS, ROOT, demo_request, requests, typed


@pytest.fixture(scope="module")
def demo_fields():
    return Screener.from_path(ROOT / "rulesets" / "demo").fields


def outcome(fn, doc):
    try:
        req = fn(doc)
    except RequestError as e:
        return ("error", str(e))
    return ("ok", typed(req.lines), sorted(req.current), req.rule_ids)


def assert_same(mapper: RequestMapper, doc: dict):
    before = json.dumps(doc, sort_keys=True, default=str)
    fast, general = outcome(mapper.request, doc), outcome(lambda d: request_lines(d, mapper.fields), doc)
    assert fast == general
    assert json.dumps(doc, sort_keys=True, default=str) == before  # the request is not changed
    return fast


def orders(doc, p=0, e=0) -> list:
    return doc["patient_dtos"][p]["fsi_encounter_dtos"][e]["fsi_order_dtos"]


# ---- regular requests: the fast path, the same lines ------------------------------------------------------


@pytest.mark.parametrize("fields", ["demo", "all"])
def test_demo_request_maps_alike_on_the_fast_path(demo_fields, fields):
    mapper = RequestMapper(demo_fields if fields == "demo" else ALL_FIELDS)
    got = assert_same(mapper, demo_request())
    assert got[0] == "ok" and len(got[1]) == 4 and mapper.general_calls == 0


def test_mapped_values_are_typed(demo_fields):
    line = RequestMapper(ALL_FIELDS).request(demo_request()).lines[0]
    assert line["fee_ocur_time"] == dt.datetime(2025, 5, 31, 10, 0) and line["brdy"] == dt.date(2013, 6, 1)
    assert line["cnt"] == 1.0 and type(line["cnt"]) is float
    assert line["diag_codes"] == ("J06.900",) and line["dscg_maindiag_code"] == "J06.900"
    assert (line["feedetl_sn"], line["fixmedins_code"], line["hosp_lv"]) == ("RX1", "H00000000001", "08")
    assert line["inscp_scp_amt"] == 18.8  # before settlement the order amount is at risk


@pytest.mark.parametrize("edit", [
    lambda d: orders(d)[0].update(cnt="3", pric="1,200.5", sumamt=" 12 "),  # numbers as text
    lambda d: orders(d)[0].update(drord_begn_date="20250531"),  # dates in the other national forms
    lambda d: orders(d)[0].update(drord_begn_date="2025/05/31 10:00:00"),
    lambda d: orders(d)[0].update(drord_begn_date="2025-05-31T10:00"),
    lambda d: d["patient_dtos"][0].update(brdy="2013/06/01"),
    lambda d: orders(d)[0].update(hilist_name="  ", sin_dos_dscr=" 0.5g ", used_frqu_dscr=""),  # blanks are null
    lambda d: orders(d)[0].update(sin_dos_dscr="2盒", used_frqu_dscr="每周两次"),  # units and words we do not read
    lambda d: orders(d)[0].update(rx_id=12345, hilist_name=None),  # an id as a number, a null name
    lambda d: orders(d)[0].update(feedetl_sn="N-1", med_list_codg="XN05AHA142A001010100555"),  # national names win
    lambda d: orders(d)[0].update(inscp_scp_amt=5, fee_ocur_time="2025-06-01 08:00:00", bilg_dept_codg="A15"),
    lambda d: orders(d)[0].update(det_item_fee_sumamt=99.5),  # the national amount fills the amount at risk
    lambda d: [o.pop("drord_begn_date") for o in orders(d)],  # the encounter's admission time instead
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(hosp_lv="03", begntime="2025-05-30 08:00:00"),
    lambda d: d["patient_dtos"][0].update(med_type="14", gend=None),  # patient-level national names
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(
        fsi_diagnose_dtos=[{"dise_codg": " e11.900 ", "maindise_flag": 1}, {"dise_codg": ""}, {"dise_codg": "I10"}]),
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(fsi_diagnose_dtos=[], diag_codes="I10;E11"),
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(  # a list the kernel leaves to _list
        fsi_diagnose_dtos=[], diag_codes=["I10", 7, " E11 ", None, ""]),
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(fsi_diagnose_dtos=[], diag_codes=["I10", "E11"]),
    lambda d: [o.update(drord_begn_date=t) for o, t in zip(orders(d), ("2024-02-29 23:59:59", "2024-02-29",
                                                                        "2025-05-31T08:00", " 2025-05-31 08:00"))],
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(dscg_main_dise_codg="K21.000"),
    lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].pop("fsi_diagnose_dtos"),
    lambda d: [o.update(curr_drord_flag=f) for o, f in zip(orders(d), (1, " 1 ", "", 0))],
    lambda d: d.update(rule_ids=["DEMO_AGE_MIN", 7]),
    lambda d: orders(d)[2].update({"hilist_code": "XJ01CAA040E001010100890", "extra_key": [1, 2]}),
])
def test_edge_cases_map_alike_on_the_fast_path(demo_fields, edit):
    for fields in (demo_fields, ALL_FIELDS):
        mapper = RequestMapper(fields)
        doc = demo_request()
        edit(doc)
        assert assert_same(mapper, doc)[0] == "ok"
        assert mapper.general_calls == 0


@pytest.mark.parametrize("edit, path", [
    (lambda d: orders(d)[1].update(cnt="many"), "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].cnt"),
    (lambda d: orders(d)[0].update(cnt=True), "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"),
    (lambda d: orders(d)[2].update(drord_begn_date="2025-02-30 10:00:00"),
     "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[2].drord_begn_date"),
    (lambda d: orders(d)[0].update(sumamt="abc"), "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].sumamt"),
    (lambda d: orders(d)[0].update(inscp_scp_amt="x"),
     "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].inscp_scp_amt"),
    (lambda d: orders(d)[3].update(rx_id="  "), "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[3].rx_id"),
    (lambda d: orders(d)[0].pop("hilist_code"), "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0]"),
    (lambda d: d["patient_dtos"][0].update(brdy="2013-13-01"), "patient_dtos[0].brdy"),
    (lambda d: [o.pop("drord_begn_date") for o in orders(d)] and
     d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(adm_date="yesterday"),
     "patient_dtos[0].fsi_encounter_dtos[0].adm_date"),
    (lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(fsi_diagnose_dtos="J06"),
     "patient_dtos[0].fsi_encounter_dtos[0].fsi_diagnose_dtos"),
    (lambda d: d["patient_dtos"][0]["fsi_encounter_dtos"][0].update(fsi_order_dtos=[{"rx_id": "A"}, "B"]),
     "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1]"),
    (lambda d: d["patient_dtos"][0].pop("fsi_encounter_dtos"), "patient_dtos[0].fsi_encounter_dtos"),
    (lambda d: d.pop("patient_dtos"), "request.patient_dtos"),
    (lambda d: d.update(rule_ids="DEMO_AGE_MIN"), "request.rule_ids"),
])
def test_user_errors_name_the_field_as_before(demo_fields, edit, path):
    for fields in (demo_fields, ALL_FIELDS):
        mapper = RequestMapper(fields)
        doc = demo_request()
        edit(doc)
        got = assert_same(mapper, doc)
        assert got[0] == "error" and got[1].startswith(path), got
        assert mapper.general_calls == 1  # the general mapping reported it


def test_an_error_in_a_field_the_rules_do_not_read_is_not_raised(demo_fields):
    """Only the fields the screener reads are typed (as before): a bad value elsewhere is ignored alike."""
    unread = next(n for n in ("pric", "medins_list_codg", "endtime") if n not in dict(demo_fields))
    doc = demo_request()
    orders(doc)[0]["pric" if unread == "pric" else unread] = "not a value"
    mapper = RequestMapper(demo_fields)
    assert assert_same(mapper, doc)[0] == "ok" and mapper.general_calls == 0


# ---- random requests ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(doc=requests())
def test_random_requests_map_alike(demo_fields, doc):
    for fields in (demo_fields, ALL_FIELDS):
        assert_same(RequestMapper(fields), copy.deepcopy(doc))


def test_random_requests_mostly_take_the_fast_path(demo_fields):
    """The agreement above is not vacuous: many requests map on the fast path, the bad ones do not."""
    rng = random.Random(11)
    mapper, ok = RequestMapper(demo_fields), 0
    for _ in range(200):
        doc = demo_request()
        o = rng.choice(orders(doc))  # one order per request gets an odd value
        o["cnt"] = rng.choice([1, 2.5, "4", " 5.5 ", "1,200", "x"])
        o["drord_begn_date"] = rng.choice(["2025-05-31 10:00:00", "20250531", "2025-02-30"])
        ok += assert_same(mapper, doc)[0] == "ok"
    assert mapper.general_calls == 200 - ok and ok > 20 and mapper.general_calls > 20
