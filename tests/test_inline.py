"""The inline screener (Screener.from_path / screen / screen_lines) on 3101-shaped requests: exact
results on the shipped request, rule_ids, stages, current orders only, request errors with their JSON
path, timing, no state between requests, no-match lines, insufficient data with a reason."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from claimaudit.connectors.request import RequestError, request_lines
from claimaudit.engine.bundle import write_bundle
from claimaudit.engine.cli import screen_request
from claimaudit.engine.inline import DEFAULT_STAGES, Screener
from claimaudit.engine.plan import build_plan
from claimaudit.dsl.ruleset import load_ruleset

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
REQUEST = PACK / "examples" / "request.json"

AGE_MSG = "药品【左氧氟沙星片】18岁以下儿童禁用，患者就诊时11岁"
SEX_MSG = "药品【非那雄胺片】限男性使用，患者性别与限定性别（男性）不符"
PRICE_ITEM = "003310010140000"  # item_price_cap: 12.00
AMOXICILLIN = "XJ01CAA040E001010100890"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "demo.bundle"
    rs = load_ruleset(PACK)
    assert rs.ok
    write_bundle(build_plan(rs), out)
    return out


@pytest.fixture(scope="module", params=["pack", "bundle"])
def source(request, bundle_dir):
    return PACK if request.param == "pack" else bundle_dir


@pytest.fixture(scope="module")
def screener(source):
    return Screener.from_path(source)


def demo_request() -> dict:
    return json.loads(REQUEST.read_text(encoding="utf-8"))


def orders_of(req: dict, patient=0, encounter=0) -> list:
    return req["patient_dtos"][patient]["fsi_encounter_dtos"][encounter]["fsi_order_dtos"]


def order(rx_id: str, code: str, **fields) -> dict:
    o = {"rx_id": rx_id, "rxno": "RX-T", "hilist_code": code, "hilist_name": "测试项目", "cnt": 1, "pric": 10,
         "sumamt": 10, "drord_begn_date": "2025-05-31 10:00:00", "drord_dept_codg": "A03", "curr_drord_flag": "1"}
    o.update(fields)
    return o


def request_with(*orders, gend="2", brdy="1980-01-01", **encounter) -> dict:
    enc = {"mdtrt_id": "MD-T", "medins_id": "H1", "medins_lv": "02", "med_type": "11", "insutype": "310",
           "adm_date": "2025-05-31 09:00:00", "fsi_diagnose_dtos": [{"dise_codg": "J06.900", "maindise_flag": "1"}],
           "fsi_order_dtos": list(orders)}
    enc.update(encounter)
    return {"patient_dtos": [{"patn_id": "T-PATIENT", "gend": gend, "brdy": brdy, "fsi_encounter_dtos": [enc]}]}


def summary(response: dict) -> list:
    """(rule, message, lines with roles) of each result, in response order."""
    return [(r["rule_id"], r["vola_cont"], [(d["rx_id"], d["vola_item_type"]) for d in r["judge_result_detail_dtos"]])
            for r in response["result"]]


def stable(response: dict) -> str:
    r = copy.deepcopy(response)
    del r["engine"]["elapsed_us"]
    return json.dumps(r, ensure_ascii=False, sort_keys=True, default=str)


# ---- the shipped request --------------------------------------------------------------------------------


def test_demo_request_gives_exactly_the_expected_results(screener):
    response = screener.screen(demo_request())
    assert summary(response) == [
        ("DEMO_AGE_MIN", AGE_MSG, [("RX1", "1")]),
        ("GZ10000301004000", SEX_MSG, [("RX2", "1")]),
    ]
    assert response["insufficient_data"] == []
    assert response["ruleset"] == {"name": "示例规则包", "version": "2026.11"}
    age, sex = response["result"]
    assert (age["vola_amt"], age["sev_deg"], age["result_type"]) == (18.8, "1", "明确")
    assert age["knowledge"]["point_id"] == "AGE-0001" and age["knowledge"]["table"] == "drug_age_min"
    assert sex["vola_amt"] == 73.0 and sex["vola_amt_stas"] == "inscp_scp_amt = 73 = 73.00"
    assert age["jr_id"] != sex["jr_id"]


def test_pack_and_bundle_screen_alike(bundle_dir):
    a = Screener.from_path(PACK).screen(demo_request())
    b = Screener.from_path(bundle_dir).screen(demo_request())
    assert stable(a) == stable(b)


def test_inline_agrees_with_the_reference_on_the_demo_request(screener):
    req = demo_request()
    ref = screen_request(screener.ruleset, request_lines(req), set(DEFAULT_STAGES))
    got = screener.screen(req)
    assert got["result"] == ref["result"] and got["insufficient_data"] == ref["insufficient_data"]


def test_from_path_refuses_a_ruleset_with_errors(tmp_path):
    (tmp_path / "bad.rules").write_text('rule X "x" {\n  result 明确\n  when nosuchfield > 1\n  message "m"\n}\n',
                                        encoding="utf-8")
    with pytest.raises(ValueError, match="unknown_field"):
        Screener.from_path(tmp_path)


# ---- rule_ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_ids, expected", [
    (["DEMO_AGE_MIN"], ["DEMO_AGE_MIN"]),
    (["GZ10000301004000"], ["GZ10000301004000"]),
    (["GZ10000301004000", "DEMO_AGE_MIN"], ["DEMO_AGE_MIN", "GZ10000301004000"]),
    (["DEMO_HOSP_LV"], []),  # would hit only the history order RX0
    (["NO_SUCH_RULE"], []),
    ([], ["DEMO_AGE_MIN", "GZ10000301004000"]),  # empty: every rule
])
def test_rule_ids_restrict_the_results(screener, rule_ids, expected):
    req = demo_request()
    req["rule_ids"] = rule_ids
    assert [r["rule_id"] for r in screener.screen(req)["result"]] == expected


def test_rule_ids_restrict_insufficient_data_too(screener):
    req = request_with(order("A", AMOXICILLIN, cnt=6, prd_days=3, sin_dos_dscr="0.5g", used_frqu_dscr="prn"))
    assert [x["rule_id"] for x in screener.screen(req)["insufficient_data"]] == ["DEMO_DAILY_DOSE"]
    req["rule_ids"] = ["DEMO_MAX_DAYS"]
    assert screener.screen(req)["insufficient_data"] == []


def test_rule_ids_must_be_a_list(screener):
    req = demo_request()
    req["rule_ids"] = "DEMO_AGE_MIN"
    with pytest.raises(RequestError, match=r"request\.rule_ids"):
        screener.screen(req)


# ---- stages ---------------------------------------------------------------------------------------------
# DEMO_PRICE_CAP is written with `stages 事中, 事后`: the default stages (事前, 事中) include it; 事前 alone does
# not. DEMO_DAILY_CNT has no stages statement: every stage.


def price_request() -> dict:
    return request_with(order("P", PRICE_ITEM, cnt=3, pric=15, sumamt=45))


def test_default_stages_are_pre_and_during():
    assert tuple(DEFAULT_STAGES) == ("事前", "事中")


def test_price_cap_rule_is_screened_with_default_stages(screener):
    response = screener.screen(price_request())
    assert summary(response) == [("DEMO_PRICE_CAP", "项目【测试项目】限定单价12.00元，实际收费单价15元", [("P", "1")])]
    assert response["result"][0]["vola_amt"] == 9.0


@pytest.mark.parametrize("stages, flagged", [
    (("事前",), False),
    (("事中",), True),
    (("事后",), True),
    (("事前", "事中", "事后"), True),
    (None, True),  # no stage filter
])
def test_stages_select_rules(source, stages, flagged):
    response = Screener.from_path(source, stages=stages).screen(price_request())
    assert [r["rule_id"] for r in response["result"]] == (["DEMO_PRICE_CAP"] if flagged else [])


def test_rule_without_stages_runs_in_every_stage(source):
    req = request_with(order("C", AMOXICILLIN, cnt=60, pric=0.5, sumamt=30, prd_days=5))
    for stages in (("事前",), ("事中",), ("事后",)):
        ids = [r["rule_id"] for r in Screener.from_path(source, stages=stages).screen(req)["result"]]
        assert "DEMO_DAILY_CNT" in ids, stages


# ---- current orders only ------------------------------------------------------------------------------


def test_history_order_is_never_flagged(screener):
    req = demo_request()
    rx0 = orders_of(req)[3]
    assert rx0["rx_id"] == "RX0" and rx0["curr_drord_flag"] == "0"
    flagged = {d["rx_id"] for r in screener.screen(req)["result"] for d in r["judge_result_detail_dtos"]}
    assert "RX0" not in flagged
    rx0["curr_drord_flag"] = "1"  # the same order as a current one breaks DEMO_HOSP_LV (level 08)
    response = screener.screen(req)
    assert ("DEMO_HOSP_LV", [("RX0", "1")]) in [(r, lines) for r, _, lines in summary(response)]
    del rx0["curr_drord_flag"]  # absent: current
    assert "DEMO_HOSP_LV" in [r["rule_id"] for r in screener.screen(req)["result"]]
    rx0["curr_drord_flag"] = 0  # a number works like the text
    assert "DEMO_HOSP_LV" not in [r["rule_id"] for r in screener.screen(req)["result"]]


def test_history_order_gives_no_insufficient_data_either(screener):
    prn = order("H", AMOXICILLIN, cnt=6, prd_days=3, sin_dos_dscr="0.5g", used_frqu_dscr="prn", curr_drord_flag="0")
    pricey = order("H2", PRICE_ITEM, cnt=3, pric=15, sumamt=45, curr_drord_flag="0")
    response = screener.screen(request_with(prn, pricey, gend=None, brdy=None))
    assert response["result"] == [] and response["insufficient_data"] == []


def test_screen_lines_without_current_screens_every_line(screener):
    req = request_lines(demo_request(), screener.fields)
    assert req.current == {"RX1", "RX2", "RX3"}
    current_only = screener.screen_lines(req.lines, req.current)
    every = screener.screen_lines(req.lines)
    assert sorted(f.rule_code for f in current_only) == ["DEMO_AGE_MIN", "GZ10000301004000"]
    assert sorted(f.rule_code for f in every) == ["DEMO_AGE_MIN", "DEMO_HOSP_LV", "GZ10000301004000"]
    assert [f.rule_code for f in screener.screen_lines(req.lines, req.current, ("GZ10000301004000",))] == \
        ["GZ10000301004000"]


def test_null_current_flag_is_not_silently_skipped(screener):
    req = demo_request()
    orders_of(req)[1]["curr_drord_flag"] = None  # RX2, the male-only drug for a girl
    try:
        response = screener.screen(req)
    except RequestError as e:
        assert "curr_drord_flag" in str(e)
        return
    assert "GZ10000301004000" in [r["rule_id"] for r in response["result"]]


# ---- request errors -----------------------------------------------------------------------------------


def two_patient_request() -> dict:
    req = demo_request()
    second = copy.deepcopy(req["patient_dtos"][0])
    second["patn_id"] = "DEMO-PATIENT-2"
    enc2 = copy.deepcopy(second["fsi_encounter_dtos"][0])
    enc2["mdtrt_id"] = "MD-DEMO-2"
    for o in enc2["fsi_order_dtos"]:
        o["rx_id"] = o["rx_id"] + "-B"
    second["fsi_encounter_dtos"].append(enc2)
    for o in second["fsi_encounter_dtos"][0]["fsi_order_dtos"]:
        o["rx_id"] = o["rx_id"] + "-A"
    req["patient_dtos"].append(second)
    return req


def test_two_patient_request_is_screened_per_line(screener):
    response = screener.screen(two_patient_request())
    flagged = sorted(d["rx_id"] for r in response["result"] for d in r["judge_result_detail_dtos"])
    assert flagged == ["RX1", "RX1-A", "RX1-B", "RX2", "RX2-A", "RX2-B"]


@pytest.mark.parametrize("where, field, value, path", [
    (("order", 1, 1, 2), "pric", "十五", "patient_dtos[1].fsi_encounter_dtos[1].fsi_order_dtos[2].pric"),
    (("order", 1, 0, 0), "cnt", [1], "patient_dtos[1].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"),
    (("order", 0, 0, 2), "prd_days", "four", "patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[2].prd_days"),
    (("order", 1, 1, 0), "drord_begn_date", "2025-02-30 10:00:00",
     "patient_dtos[1].fsi_encounter_dtos[1].fsi_order_dtos[0].drord_begn_date"),
    (("encounter", 1, 1), "adm_date", "yesterday", "patient_dtos[1].fsi_encounter_dtos[1].adm_date"),
    (("patient", 1), "brdy", "2013-13-01", "patient_dtos[1].brdy"),
])
def test_bad_field_raises_request_error_naming_the_json_path(screener, where, field, value, path):
    req = two_patient_request()
    kind = where[0]
    if kind == "order":
        obj = orders_of(req, where[1], where[2])[where[3]]
    elif kind == "encounter":
        obj = req["patient_dtos"][where[1]]["fsi_encounter_dtos"][where[2]]
        for o in obj["fsi_order_dtos"]:
            o.pop("drord_begn_date", None)  # so the encounter's date is the one every line reads
    else:
        obj = req["patient_dtos"][where[1]]
    obj[field] = value
    with pytest.raises(RequestError) as e:
        screener.screen(req)
    message = str(e.value)
    assert message.startswith(path + ": "), message
    assert "\n" not in message


def test_bad_request_leaves_the_screener_usable(screener):
    bad = demo_request()
    orders_of(bad)[0]["cnt"] = "many"
    with pytest.raises(RequestError):
        screener.screen(bad)
    assert [r["rule_id"] for r in screener.screen(demo_request())["result"]] == ["DEMO_AGE_MIN", "GZ10000301004000"]


# ---- timing and repeatability -------------------------------------------------------------------------


def test_response_carries_elapsed_microseconds(screener):
    engine = screener.screen(demo_request())["engine"]
    assert engine["executor"] == "inline"
    assert isinstance(engine["elapsed_us"], float) and 0 < engine["elapsed_us"] < 5e6


def test_same_request_a_hundred_times_gives_identical_results(screener):
    first = stable(screener.screen(demo_request()))
    other = price_request()
    other_first = stable(screener.screen(other))
    for i in range(100):
        assert stable(screener.screen(demo_request())) == first, i
        if i % 10 == 0:  # interleave a different request: nothing may leak from one to the next
            assert stable(screener.screen(other)) == other_first


def test_screening_does_not_change_the_request(screener):
    req = demo_request()
    before = json.dumps(req, sort_keys=True)
    screener.screen(req)
    assert json.dumps(req, sort_keys=True) == before


# ---- no knowledge match, insufficient data ------------------------------------------------------------


def test_lines_without_knowledge_match_give_nothing(screener):
    """No candidate rule: even missing sex, birth date, dose and days give no outcome at all."""
    req = request_with(order("N1", "XZ99ZZZ999A000000000000"), order("N2", "999999999999999"),
                       order("N3", "0033100101400001", cnt=3, pric=99, sumamt=297),  # longer than an exact key
                       order("N4", "XJ01CA"),  # shorter than every prefix
                       gend=None, brdy=None)
    response = screener.screen(req)
    assert response["result"] == [] and response["insufficient_data"] == []


def test_prn_frequency_is_insufficient_data_with_a_reason(screener):
    req = request_with(order("A", AMOXICILLIN, hilist_name="阿莫西林胶囊", cnt=6, pric=0.5, sumamt=3, prd_days=3,
                             sin_dos_dscr="0.5g", used_frqu_dscr="prn"))
    response = screener.screen(req)
    assert response["result"] == []
    assert len(response["insufficient_data"]) == 1
    entry = response["insufficient_data"][0]
    assert (entry["rule_id"], entry["rule_name"], entry["rx_id"]) == ("DEMO_DAILY_DOSE", "超说明书日剂量", "A")
    assert "prn" in entry["reason"]


def test_dose_in_tablets_is_insufficient_data(screener):
    req = request_with(order("T", "XA10BAE098A001010102233", cnt=1, pric=20, sumamt=20, prd_days=10,
                             sin_dos_dscr="2片", used_frqu_dscr="tid"),
                       fsi_diagnose_dtos=[{"dise_codg": "E11.900", "maindise_flag": "1"}])
    response = screener.screen(req)
    assert response["result"] == []
    assert [(x["rule_id"], x["rx_id"]) for x in response["insufficient_data"]] == [("DEMO_DAILY_DOSE", "T")]
    assert response["insufficient_data"][0]["reason"]


def test_same_dose_with_a_regular_frequency_is_decided(screener):
    base = dict(cnt=6, pric=0.5, sumamt=3, prd_days=3, sin_dos_dscr="2g")
    over = screener.screen(request_with(order("A", AMOXICILLIN, used_frqu_dscr="tid", **base)))  # 6g > 4g
    under = screener.screen(request_with(order("A", AMOXICILLIN, used_frqu_dscr="bid", **base)))  # 4g, not over
    assert [r["rule_id"] for r in over["result"]] == ["DEMO_DAILY_DOSE"] and over["insufficient_data"] == []
    assert under["result"] == [] and under["insufficient_data"] == []


def test_missing_sex_is_insufficient_for_the_sex_rule_only(screener):
    req = demo_request()
    del req["patient_dtos"][0]["gend"]
    response = screener.screen(req)
    assert [r["rule_id"] for r in response["result"]] == ["DEMO_AGE_MIN"]
    assert [(x["rule_id"], x["rx_id"]) for x in response["insufficient_data"]] == [("GZ10000301004000", "RX2")]
    assert "gend" in response["insufficient_data"][0]["reason"]


def test_effective_date_limits_a_rule(screener):
    """GZ10000301004000 is effective from 2024-01-01 (by date of service)."""
    req = demo_request()
    for o in orders_of(req):
        o["drord_begn_date"] = "2023-12-31 10:00:00"
    assert [r["rule_id"] for r in screener.screen(req)["result"]] == ["DEMO_AGE_MIN"]
    for o in orders_of(req):
        o["drord_begn_date"] = "2024-01-01 00:00:00"
    assert [r["rule_id"] for r in screener.screen(req)["result"]] == ["DEMO_AGE_MIN", "GZ10000301004000"]
