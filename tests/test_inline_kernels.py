"""The inline screener's kernels (engine/kernels/_inline.pyx) agree with their pure-Python twins
(inline_twin.py, generated code for decisions): request mapping line for line, decisions hit for hit, on the
shipped packs' examples, random lines and random requests; CLAIMAUDIT_KERNELS selects them."""
from __future__ import annotations

import copy
import random

import pytest
from hypothesis import HealthCheck, given, settings

from claimaudit.connectors.request import RequestError, RequestMapper
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.inline import Screener
from claimaudit.engine.inline_decide import DecisionIndex, ordered_hits
from claimaudit.engine.inline_render import Renderers
from claimaudit.engine.kernels import inline as inline_kernels
from claimaudit.engine.kernels import inline_twin
from claimaudit.engine.plan import build_plan

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
    rendered = 0
    for line in lines:
        for rule_index, point, outcome in ordered_hits(compiled.decide(line, {})):
            got = {name: r[rule_index].render(line, {}, point, outcome) for name, r in renderers.items()}
            assert got["cython"] == got["python"], (rs.rules[rule_index].code, line["feedetl_sn"])
            brief = {name: r[rule_index].render(line, {}, point, outcome, True) for name, r in renderers.items()}
            assert vars_of(brief["cython"]) == vars_of(brief["python"])
            rendered += 1
    assert rendered > (20 if rs.name != "跨行规则示例包" else 0)
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
