"""The inline screener's kernels (engine/kernels/_inline.pyx) agree with their pure-Python twins
(inline_twin.py, generated code for decisions): request mapping line for line, decisions hit for hit, on the
shipped packs' examples, random lines and random requests; CLAIMAUDIT_KERNELS selects them."""
from __future__ import annotations

import copy
import datetime as dt
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings

from claimaudit.connectors.request import RequestError, RequestMapper
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.findings import VIOLATION, insufficient_entry, to_3101_result
from claimaudit.engine.inline import Screener
from claimaudit.engine.inline_decide import DecisionIndex, ordered_hits
from claimaudit.engine.inline_render import Renderers
from claimaudit.engine.kernels import inline as inline_kernels
from claimaudit.engine.kernels import inline_twin
from claimaudit.engine.plan import build_plan
from claimaudit.engine.values import Unknown

from inline_cases import ALL_FIELDS, PACKS, demo_request, example_sets, pack_pools, random_line, requests, typed

pytestmark = pytest.mark.skipif(inline_kernels._inline is None, reason="the compiled inline kernels are not built")


def test_the_environment_selects_the_kernels(monkeypatch):
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert inline_kernels.backend() is inline_twin and RequestMapper(ALL_FIELDS).kernels is inline_twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert inline_kernels.backend() is inline_kernels._inline
    assert inline_kernels.backend("python") is inline_twin


# ---- request mapping --------------------------------------------------------------------------------------


def mapped(mapper: RequestMapper, doc: dict):
    try:
        req = mapper.request(copy.deepcopy(doc))
    except RequestError as e:
        return ("error", str(e))
    return ("ok", typed(req.lines), sorted(req.current), req.rule_ids)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=requests())
def test_mapping_kernels_agree_on_random_requests(doc):
    assert mapped(RequestMapper(ALL_FIELDS, "cython"), doc) == mapped(RequestMapper(ALL_FIELDS, "python"), doc)


def test_mapping_kernels_agree_on_the_fast_path():
    rng = random.Random(3)
    compiled, twin = RequestMapper(ALL_FIELDS, "cython"), RequestMapper(ALL_FIELDS, "python")
    for _ in range(100):
        doc = demo_request()
        order = rng.choice(doc["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"])
        order.update(cnt=rng.choice([1, "2", " 3.5 ", 4.0]), hilist_name=rng.choice([" 药 ", "", None, 7]),
                     drord_begn_date=rng.choice(["2025-05-31 10:00:00", "20250531", None]))
        assert mapped(compiled, doc) == mapped(twin, doc)
    assert compiled.general_calls == twin.general_calls == 0


def test_typed_line_takes_the_best_ranked_pick():
    """Precedence across sources and keys, whatever order the keys come in."""
    spec = (("a", 0, ((0, "x"), (0, "y"), (1, "x")), None, str), ("n", 1, ((1, "n"), (0, "m")), None, float))
    for k in (inline_kernels._inline, inline_twin):
        prepared = k.prepare(spec, 2)
        base = {"a": None, "n": None}
        assert k.typed_line(({"y": " Y ", "x": " X "}, {"x": "Z", "n": 2}), base, prepared) == {"a": "X", "n": 2.0}
        assert k.typed_line(({"y": "Y", "x": None, "m": 5}, {"x": "Z"}), base, prepared) == {"a": "Y", "n": 5.0}
        assert k.typed_line(({}, {"x": "Z"}), base, prepared) == {"a": "Z", "n": None}
        assert k.typed_line(({"x": "  "}, {}), base, prepared) == {"a": None, "n": None}  # blank is null
        assert base == {"a": None, "n": None}


# ---- decisions ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(PACKS))
def indexes(request):
    rs = load_ruleset(PACKS[request.param])
    assert rs.ok
    plan = build_plan(rs)
    screener = Screener(plan, stages=None)
    families = [f for f in plan.families if not (len(f.rules) == 1 and rs.rules[f.rules[0]].window is not None)]
    active = {id(r) for r in rs.rules}
    return rs, screener, DecisionIndex(families, rs, active, "cython"), DecisionIndex(families, rs, active, "python")


def test_decision_kernels_agree_on_every_example(indexes):
    rs, _, compiled, twin = indexes
    hits = 0
    for _, lines in example_sets(rs):
        for line in lines:
            got = compiled.decide(line, {})
            assert got == twin.decide(line, {}), line["feedetl_sn"]
            hits += len(got)
    assert hits > 0


def test_decision_kernels_agree_on_random_lines(indexes):
    rs, _, compiled, twin = indexes
    codes, diags = pack_pools(rs)
    rng = random.Random(99)
    outcomes = set()
    for i in range(3000):
        line = random_line(rng.choice, i, codes, diags)
        lv_c, lv_t = {}, {}
        got = compiled.decide(line, lv_c)
        assert got == twin.decide(line, lv_t), line
        assert lv_c == lv_t  # the derived values handed to rendering are the same too
        outcomes.update(o for _, _, o in got)
    if rs.name != "跨行规则示例包":
        assert outcomes == {"violation", "insufficient_data"}


def test_compiled_families_are_extension_objects(indexes):
    _, _, compiled, twin = indexes
    assert all(type(d.decide).__name__ == "Family" for d in compiled.deciders)
    assert all(callable(d.decide) and hasattr(d.decide, "__source__") for d in twin.deciders)


def test_decision_kernels_agree_on_whole_requests(indexes):
    """decide_lines: every current line's hits and derived values in one call."""
    rs, _, compiled, twin = indexes
    codes, diags = pack_pools(rs)
    rng = random.Random(5)
    decided = 0
    for _ in range(200):
        lines = [random_line(rng.choice, i, codes, diags) for i in range(rng.randint(1, 12))]
        current = {line["feedetl_sn"] for line in lines if rng.random() < 0.7}
        for cur in (current, None):
            got = compiled.decide_lines(lines, cur)
            assert got == twin.decide_lines(lines, cur)
            assert all(lines[i]["feedetl_sn"] in current for i in got) if cur is not None else True
            decided += len(got)
    assert decided > 100


# ---- rendering ---------------------------------------------------------------------------------------------


def test_render_kernels_agree_on_every_hit(indexes):
    """The compiled render programs and the generated Python ones give equal findings, and the same reason
    for every insufficient-data hit, on the examples and on random lines."""
    rs, screener, compiled, _ = indexes
    reference = screener.reference
    renderers = {name: Renderers(rs, reference, name) for name in ("cython", "python")}
    codes, diags = pack_pools(rs)
    rng = random.Random(8)
    lines = [line for _, example in example_sets(rs) for line in example]
    lines += [random_line(rng.choice, i, codes, diags) for i in range(800)]
    rendered = results = 0
    for line in lines:
        for rule_index, point, outcome in ordered_hits(compiled.decide(line, {})):
            got = {name: r[rule_index].render(line, {}, point, outcome) for name, r in renderers.items()}
            assert got["cython"] == got["python"], (rs.rules[rule_index].code, line["feedetl_sn"])
            brief = {name: r[rule_index].render(line, {}, point, outcome, True) for name, r in renderers.items()}
            assert vars_of(brief["cython"]) == vars_of(brief["python"])
            # the response entries built directly are what the response makes of the findings
            entry = {name: r[rule_index].result(line, {}, point, outcome) for name, r in renderers.items()}
            want = to_3101_result(got["python"]) if outcome == VIOLATION else insufficient_entry(got["python"])
            assert entry["cython"] == entry["python"] == (outcome == VIOLATION, want)
            assert list(entry["cython"][1]) == list(want)  # keys in the response's order
            results += outcome == VIOLATION
            rendered += 1
    assert rendered > (20 if rs.name != "跨行规则示例包" else 0)
    assert results > (10 if rs.name != "跨行规则示例包" else 0)
    assert all(type(r.program).__name__ == "RenderProgram" for r in renderers["cython"]._by_rule.values())


def vars_of(found) -> dict:
    slots = getattr(type(found), "__slots__", ())
    return {n: getattr(found, n) for n in slots} if slots else vars(found)


def test_compiled_money_rounding_is_round_money():
    from claimaudit.engine.values import round_money
    rng = random.Random(1)
    values = [rng.uniform(-1e6, 1e6) for _ in range(20000)] + [k / 1000 for k in range(-20000, 20000)]
    values += [2.675, 1.005, -2.675, 0.0, -0.0, 1e15 + 0.125, 5e-7, 123456789.995]
    for v in values:
        got, want = inline_kernels._inline.money(v), round_money(v)
        assert got == want and str(got) == str(want), v


def test_compiled_findings_stay_frozen(indexes):
    rs, screener, compiled, _ = indexes
    renderers = Renderers(rs, screener.reference, "cython")
    checked = 0
    for _, lines in example_sets(rs):
        for line in lines:
            for rule_index, point, outcome in ordered_hits(compiled.decide(line, {})):
                found = renderers[rule_index].render(line, {}, point, outcome)
                with pytest.raises(AttributeError):
                    found.message = "changed"
                assert type(found).__name__ == "Finding" and hash(found) == hash(found)
                checked += 1
    assert checked > 0


def test_compiled_date_reading_is_the_general_conversion():
    """The mapping kernel reads ISO date and date-time text itself: what it reads equals claims._date /
    _datetime, and what it leaves (None) is left to them, valid or not."""
    import datetime as dt
    from claimaudit.connectors.claims import _date, _datetime
    rng = random.Random(5)
    texts = ["2025-05-31", "2025-05-31 10:00:00", "2025-05-31T10:00:00", "2025-05-31 10:00", "2024-02-29",
             "2023-02-29", "2025-13-01", "2025-00-10", "2025-04-31", "0000-01-01", "9999-12-31 23:59:59",
             "2025-05-31 24:00:00", "2025-05-31 10:60", "2025-05-31 10:00:60", "2025/05/31", "20250531",
             " 2025-05-31", "2025-05-31 ", "2025-05-31x10:00", "2025-5-31", "２０２５-05-31", "2025-05-31 10:00:00.5",
             "1900-02-29", "2000-02-29", "2025-05-31 1:00:00", ""]
    for _ in range(3000):
        d = dt.datetime(1900, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 200 * 365 * 86400))
        texts.append(d.isoformat(sep=rng.choice(" T"), timespec=rng.choice(["seconds", "minutes"])))
        texts.append(d.date().isoformat())
        texts.append(f"{rng.randrange(0, 10000):04d}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 33):02d}")
    read = 0
    for text in texts:
        for with_time, general in ((False, _date), (True, _datetime)):
            got = inline_kernels._inline.iso(text, with_time)
            if got is None:
                continue
            read += 1
            assert type(got) is type(general(text)) and got == general(text), text
            assert len(text) == 10 or with_time, text
    assert read > 6000
    for with_time in (False, True):  # what the general conversion refuses is never read here
        for text in ("2023-02-29", "2025-13-01", "0000-01-01", "2025-05-31 24:00:00", "2025-04-31"):
            assert inline_kernels._inline.iso(text, with_time) is None


def test_compiled_ages_are_the_derived_ones():
    """age_years / age_days computed in the decision kernel equal values.derive; where the kernel leaves them
    (None: no date of service, a birth after it, values of other types) the general path decides."""
    import datetime as dt
    from claimaudit.engine.values import derive
    rng = random.Random(6)
    start = dt.date(1900, 1, 1)
    lines = [{"fee_ocur_time": dt.datetime(2024, 2, 29, 8), "brdy": dt.date(2000, 2, 29)},
             {"fee_ocur_time": dt.datetime(2025, 2, 28, 8), "brdy": dt.date(2000, 2, 29)},
             {"fee_ocur_time": dt.date(2025, 3, 1), "brdy": dt.date(2000, 2, 29)},
             {"fee_ocur_time": dt.datetime(2025, 3, 1), "brdy": dt.date(2025, 3, 1)}]
    for _ in range(5000):
        b = start + dt.timedelta(days=rng.randrange(0, 200 * 365))
        t = b + dt.timedelta(days=rng.randrange(0, 100 * 365))
        lines.append({"fee_ocur_time": dt.datetime.combine(t, dt.time(rng.randrange(24))) if rng.random() < 0.8 else t,
                      "brdy": b})
    left = [{"fee_ocur_time": dt.datetime(2025, 3, 1), "brdy": dt.date(2025, 3, 2)}, {"brdy": dt.date(2000, 1, 1)},
            {"fee_ocur_time": dt.datetime(2025, 3, 1)}, {"fee_ocur_time": "2025-03-01", "brdy": dt.date(2000, 1, 1)},
            {"fee_ocur_time": dt.datetime(2025, 3, 1), "brdy": dt.datetime(2000, 1, 1)}]
    for line in lines:
        for which, name in ((1, "age_years"), (2, "age_days")):
            got = inline_kernels._inline.age(line, which)
            assert type(got) is int and got == derive(name, line), (line, name)
    for line in left:
        assert inline_kernels._inline.age(line, 1) is None and inline_kernels._inline.age(line, 2) is None


def test_compiled_daily_dose_from_remembered_parts_is_derived_alike():
    """The decision kernel makes a new (dose text, frequency text) pair's daily_dose from the parts remembered
    by their own texts: the same quantity (to the bit) or the same unknown as values.derive."""
    from claimaudit.engine import codegen
    from claimaudit.engine.values import derive
    rng = random.Random(9)
    doses = ["500mg", "0.5g", "1 g", "2片", "10ml", "300µg", "abc", "", "0.1 mg", "0.25 g", "100IU", "5 mg", "7.3mg"]
    doses += [f"{rng.uniform(0, 2000):.{rng.randrange(0, 4)}f}{rng.choice(['mg', 'g', 'µg', 'ml'])}" for _ in range(200)]
    freqs = ["tid", "bid", "qd", "q8h", "q6h", "每日3次", "2次/日", "prn", "st", "", "qid", "1次/日", "每周两次", "q12h"]
    made = 0
    for d in doses:
        for f in freqs:
            line = {"sin_dos_dscr": d, "used_frqu_dscr": f}
            assert inline_kernels._inline.daily_dose(line) in (None, derive("daily_dose", line))
            for name in ("single_dose", "daily_frequency"):
                codegen._remembered(name, line)  # the parts, remembered
            got, want = inline_kernels._inline.daily_dose(line), derive("daily_dose", line)
            if got is not None:
                assert type(got) is type(want) and got == want, (d, f)
                if type(want).__name__ == "Quantity":
                    assert got.base_value.hex() == want.base_value.hex()
                made += 1
    assert made > 2000


def test_compiled_value_text_is_format_value():
    """Values shown in findings (format_value) and amounts (.2f), as the render kernel writes floats itself."""
    from claimaudit.dsl.units import Quantity
    from claimaudit.engine.values import format_value
    rng = random.Random(4)
    floats = [0.0, -0.0, 1.0, -1.0, 2.5, 1e300, -1e300, 1e16, 123456789.0, 1e-7, 5e-324, 0.1 + 0.2, 2.675,
              float("inf"), float("-inf"), float("nan"), 1.005, 999999.5, 1234567.0, 12345678.9]
    floats += [rng.uniform(-1e7, 1e7) for _ in range(3000)] + [float(rng.randrange(-10**12, 10**12)) for _ in range(500)]
    floats += [rng.uniform(-1, 1) * 10.0 ** rng.randrange(-30, 30) for _ in range(3000)]
    k = inline_kernels._inline
    for v in floats:
        assert k.shown(v) == format_value(v), v
        assert k.dtoa(v, "f", 2) == f"{v:.2f}", v
    for v in ("文本", None, True, False, 3, -12, 10**30, Quantity(1500.0, "mass"), (1.5, "a"), ["J03", "B35"], [],
              (None, Unknown("x"), (2.0, True)), Unknown("reason"), dt.date(2025, 6, 1), dt.datetime(2025, 6, 1, 9, 30),
              dt.datetime(2025, 6, 1, 9, 30, 5)):
        assert k.shown(v) == format_value(v), v


def test_compiled_amount_text_is_two_decimals():
    """Amounts are shown with two decimals; the kernel prints a fen-rounded amount's cents as digits."""
    from claimaudit.engine.values import round_money
    rng = random.Random(5)
    values = [0.0, -0.0, 0.004, -0.004, 0.005, -0.001, 2.675, 1.005, 999999.995, 9999999999999.99, 1e13, -1e13, 1e300,
              float("inf"), float("-inf")]
    values += [rng.uniform(-1e6, 1e6) for _ in range(20000)] + [rng.uniform(-1e13, 1e13) for _ in range(5000)]
    values += [rng.randrange(-10**9, 10**9) / 100 for _ in range(5000)]
    for v in values:
        amount = round_money(v) if math.isfinite(v) else v
        assert inline_kernels._inline.fen_text(amount) == f"{amount:.2f}", v

