"""The inline screener's compiled paths give exactly the reference's findings, every field:

- generated expression code (engine/codegen.py) evaluates like ``reference.evaluate``, unknown reasons
  included, on every scope, condition and amount of the shipped packs;
- compiled renderers (engine/inline_render.py) render exactly what ``ReferenceEngine.render_hit`` renders,
  and the screener's line-level findings equal the reference's, on every example of rulesets/demo,
  rulesets/nhsa and rulesets/demo_history (with its local profile) and on random lines;
- ``new_finding`` makes the object the dataclass constructor makes.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine import codegen
from claimaudit.dsl.units import Quantity
from claimaudit.engine.findings import FINDING_FIELDS, Finding, KnowledgePoint, new_finding, screen_response
from claimaudit.engine.inline import Screener
from claimaudit.engine.inline_render import format_fast
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import Env, ReferenceEngine, evaluate
from claimaudit.engine.values import Unknown, format_value

from inline_cases import PACKS, example_sets, pack_pools, random_line


@pytest.fixture(scope="module", params=sorted(PACKS))
def pack(request):
    rs = load_ruleset(PACKS[request.param])
    assert rs.ok, rs.render_diagnostics()
    return request.param, rs


@pytest.fixture(scope="module")
def screener(pack):
    return Screener(build_plan(pack[1]), stages=None)


def line_level(rs) -> set:
    return {r.code for r in rs.rules if r.window is None}


def reference_line_findings(rs, lines) -> list:
    codes = line_level(rs)
    return sorted((f for f in ReferenceEngine(rs).run(lines) if f.rule_code in codes), key=_order)


def screener_line_findings(screener, lines) -> list:
    codes = line_level(screener.ruleset)
    return sorted((f for f in screener.screen_lines(lines) if f.rule_code in codes), key=_order)


def _order(f: Finding):
    return (f.finding_id, f.outcome)


# ---- generated code evaluates like the reference -----------------------------------------------------------


def compiled(expr):
    src = codegen.Source()
    em = codegen.ExprEmitter(src, row="row")
    value = em.emit(expr)
    src.add(f"return {value}")
    return src.function("value", "line, lv, row", em.prologue, "test")


def line_rule_expressions(rs):
    for rule in rs.rules:
        if rule.window is None:
            for expr in (rule.scope, rule.condition, rule.amount):
                if expr is not None:
                    yield rule, expr


def test_generated_code_evaluates_like_the_reference(pack):
    name, rs = pack
    codes, diags = pack_pools(rs)
    rng = random.Random(3)
    lines = [random_line(rng.choice, i, codes, diags) for i in range(150)]
    checked = unknowns = 0
    for rule, expr in line_rule_expressions(rs):
        fn = compiled(expr)
        table = rs.tables[rule.lookup.table] if rule.lookup else None
        rows = [None] if table is None else [table.rows[i] for i in range(min(len(table), 6))]
        for line in lines:
            for row in rows:
                want = evaluate(expr, Env(line, row))
                got = fn(line, {}, row)
                assert type(got) is type(want) and got == want, (rule.code, ir.show(expr), line, row)
                checked += 1
                unknowns += type(want) is Unknown
    # the comparison covers unknown reasons too
    assert checked > {"demo": 1000, "nhsa": 1000, "demo_history": 300}[name] and unknowns > 30


def test_generated_code_short_circuits_like_kleene_logic():
    """(false and unknown) is false, (true or unknown) is true, (unknown and true) is the unknown."""
    gend, age = ir.Field("gend", "text"), ir.Field("age_years", "number")
    is_male = ir.Op("==", (gend, ir.Const("1", "text")), "bool")
    adult = ir.Op(">=", (age, ir.Const(18, "number")), "bool")
    both = compiled(ir.Op("and", (is_male, adult), "bool"))
    either = compiled(ir.Op("or", (is_male, adult), "bool"))
    woman_no_birth = {"gend": "2", "brdy": None, "fee_ocur_time": dt.datetime(2025, 1, 1)}
    man_no_birth = dict(woman_no_birth, gend="1")
    assert both(woman_no_birth, {}, None) is False
    assert either(man_no_birth, {}, None) is True
    unknown = both(man_no_birth, {}, None)
    assert type(unknown) is Unknown and "brdy" in unknown.reason


# ---- compiled rendering is the reference's rendering ------------------------------------------------------


def test_every_hit_renders_like_render_hit(pack, screener):
    name, rs = pack
    reference, rendered = ReferenceEngine(rs), 0
    for _, lines in example_sets(rs):
        for line in lines:
            lv: dict = {}
            for rule_index, point, outcome in screener.decide_line(line, lv):
                rule = rs.rules[rule_index]
                got = screener.renderers[rule_index].render(line, lv, point, outcome)
                assert got == reference.render_hit(rule, line, point, outcome), (rule.code, line["feedetl_sn"])
                rendered += 1
    assert rendered >= {"demo": 20, "nhsa": 20, "demo_history": 1}[name]


def test_every_example_gives_the_reference_findings_field_for_field(pack, screener):
    name, rs = pack
    total = 0
    for rule, lines in example_sets(rs):
        got, want = screener_line_findings(screener, lines), reference_line_findings(rs, lines)
        assert [f.to_record() for f in got] == [f.to_record() for f in want], (name, rule.code)
        assert got == want
        total += len(want)
    assert total >= {"demo": 30, "nhsa": 30, "demo_history": 0}[name]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_lines_give_the_reference_findings_field_for_field(pack, screener, data):
    _, rs = pack
    codes, diags = pack_pools(rs)
    n = data.draw(st.integers(1, 8))
    lines = [random_line(lambda options: data.draw(st.sampled_from(options)), i, codes, diags) for i in range(n)]
    assert screener_line_findings(screener, lines) == reference_line_findings(rs, lines)


def test_many_random_lines_agree_and_are_not_vacuous(pack, screener):
    name, rs = pack
    codes, diags = pack_pools(rs)
    rng = random.Random(2026)
    lines = [random_line(rng.choice, i, codes, diags) for i in range(1500)]
    got, want = screener_line_findings(screener, lines), reference_line_findings(rs, lines)
    assert got == want
    if name != "demo_history":  # its line-level rules are few
        assert len({f.rule_code for f in want}) >= 5
        assert {f.outcome for f in want} == {"violation", "insufficient_data"}


def test_a_local_profile_marks_findings_alike(tmp_path):
    """Shadow mode, severity and an exemption on line-level rules of the demo pack."""
    profile = tmp_path / "local.toml"
    profile.write_text('[profile]\nname = "测试"\nversion = "1"\n\n[rules.DEMO_AGE_MIN]\nshadow = true\n\n'
                       '[rules.GZ10000301004000]\nseverity = "提醒"\n\n[[exemptions]]\nrule = "DEMO_DAILY_DOSE"\n'
                       'fixmedins_code = "H001"\nperiod = "2025-01-01/2025-12-31"\nreason = "试点"\n'
                       'authority = "测试〔2025〕1号"\n', encoding="utf-8")
    rs = load_ruleset(PACKS["demo"], profile)
    assert rs.ok, rs.render_diagnostics()
    screener = Screener(build_plan(rs), stages=None)
    codes, diags = pack_pools(rs)
    rng = random.Random(5)
    lines = [random_line(rng.choice, i, codes, diags) for i in range(800)]
    for _, example in example_sets(rs):
        lines.extend(example)
    got, want = screener_line_findings(screener, lines), reference_line_findings(rs, lines)
    assert got == want
    assert any(f.shadow for f in want) and any(f.exemption for f in want)
    assert {f.profile for f in want} == {"测试 1"}


def test_insufficient_hit_the_reference_does_not_confirm_is_refused():
    """Like render_hit, the renderer re-evaluates an insufficient-data hit and refuses a disagreement."""
    rs = load_ruleset(PACKS["demo"])
    screener = Screener(build_plan(rs), stages=None)
    violations = [(line, hit) for _, lines in example_sets(rs) for line in lines
                  for hit in screener.decide_line(line) if hit[2] == "violation" and hit[1] >= 0]
    assert violations
    line, (rule_index, point, _) = violations[0]
    with pytest.raises(AssertionError, match="disagree"):
        screener.renderers[rule_index].render(line, {}, point, "insufficient_data")


# ---- the pieces ------------------------------------------------------------------------------------------


def test_new_finding_is_the_constructed_finding():
    values = {name: None for name in FINDING_FIELDS}
    values.update(finding_id="f", outcome="violation", rule_code="R", evidence=(("cnt", "2"),), amount=1.5,
                  lines=(("L1", 1),), shadow=False, knowledge=KnowledgePoint("t", "k", 3, "P1", "text", "src"))
    made, built = new_finding(dict(values)), Finding(**values)
    assert made == built and hash(made) == hash(built) and made.to_record() == built.to_record()
    assert vars(made) == vars(built)
    with pytest.raises(AttributeError):  # still frozen
        made.amount = 2.0


@pytest.mark.parametrize("value", ["药品", "", 3.0, 2.5, 1e20, 0.1 + 0.2, None, True, 7, Unknown("x"),
                                   dt.datetime(2025, 1, 1, 9, 30), dt.datetime(2025, 1, 1, 9, 30, 5),
                                   dt.date(2025, 1, 1), ("a", "b"), float("inf")])
def test_format_fast_is_format_value(value):
    assert format_fast(value) == format_value(value)


def test_derived_memo_keeps_equal_values_of_other_types_apart():
    """The memo keys on text and dates only: a count stored as text and as a number never share."""
    text = {"sin_dos_dscr": "500mg", "used_frqu_dscr": "tid"}
    assert codegen.derived_value("daily_dose", dict(text)) == evaluate(ir.Field("daily_dose", "quantity"),
                                                                      Env(dict(text), None))
    odd = {"sin_dos_dscr": 500, "used_frqu_dscr": "tid"}  # a caller's untyped line: no memo, same answer
    want = evaluate(ir.Field("single_dose", "quantity"), Env(dict(odd), None))
    assert codegen.derived_value("single_dose", dict(odd)) == want
    unhashable = {"dscg_maindiag_code": "I10.x00", "diag_codes": ["E11.900"]}
    assert codegen.diagnoses({}, unhashable) == ("I10.X00", "E11.900")


def test_new_quantity_is_the_constructed_quantity():
    made, built = codegen.new_quantity(1500.0, "mass"), Quantity(1500.0, "mass")
    assert made == built and hash(made) == hash(built) and str(made) == str(built) == "1.5g"
    assert vars(made) == vars(built)


# ---- screen(): the response of the full findings ---------------------------------------------------------


def request_of(lines: list) -> dict:
    """A 3101 request carrying these typed lines' fields under their national names."""
    def text(v):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) \
            else list(v) if isinstance(v, tuple) else v
    first = lines[0]
    enc_fields = ("mdtrt_id", "med_type", "insutype", "hosp_lv", "fixmedins_code", "begntime", "endtime",
                  "dscg_maindiag_code", "diag_codes")
    patient = {"patn_id": first["psn_no"], "gend": first["gend"], "brdy": text(first["brdy"])}
    encounter = {k: text(first[k]) for k in enc_fields}
    encounter["fsi_order_dtos"] = [{k: text(v) for k, v in line.items() if k not in enc_fields and k not in patient
                                    and v is not None} for line in lines]
    patient["fsi_encounter_dtos"] = [encounter]
    return {"patient_dtos": [patient]}


def stable(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "engine"}


def test_screen_responds_with_the_full_findings(pack, screener):
    """screen() renders insufficient-data findings briefly: its response is still the full findings'."""
    _, rs = pack
    codes, diags = pack_pools(rs)
    rng = random.Random(17)
    insufficient = 0
    for _ in range(60):
        lines = [random_line(rng.choice, i, codes, diags) for i in range(rng.randint(1, 8))]
        for line in lines[1:]:  # one encounter, one patient
            line.update({k: lines[0][k] for k in ("mdtrt_id", "psn_no", "gend", "brdy", "med_type", "insutype",
                                                  "hosp_lv", "fixmedins_code", "begntime", "endtime",
                                                  "dscg_maindiag_code", "diag_codes")})
        doc = request_of(lines)
        req = screener.mapper.request(doc)
        full = screen_response(screener.screen_lines(req.lines, req.current), rs, "inline", 0.0)
        assert stable(screener.screen(doc)) == stable(full)
        insufficient += len(full["insufficient_data"])
    assert insufficient >= (10 if pack[0] != "demo_history" else 0)


@pytest.mark.parametrize("a, b", [(Quantity(1500.0, "mass"), Quantity(2.0, "count:片")),
                                  (Quantity(-0.0, "mass"), Quantity(0.0, "volume")),
                                  (Quantity(0.0, "mass"), Quantity(-0.0, "volume"))])
def test_unlike_units_give_the_references_reason(a, b):
    from claimaudit.engine.reference import _compare
    for _ in range(2):  # made, then remembered
        assert codegen.units_differ(a, b) == _compare(">", a, b)


@pytest.mark.parametrize("q", [Quantity(1500.0, "mass"), Quantity(-0.0, "mass"), Quantity(0.0, "mass"),
                               Quantity(2.5, "count:片"), Quantity(0.25, "iu")])
def test_quantity_text_is_remembered_exactly(q):
    assert format_fast(q) == format_fast(q) == format_value(q)


def test_a_3101_result_cites_its_knowledge_point():
    from claimaudit.engine.findings import to_3101_result
    values = {name: None for name in FINDING_FIELDS}
    values.update(severity="warn", evidence=(("cnt", "2"), ("k.max", "1")), lines=(("L1", 1), ("L0", 2)),
                  knowledge=KnowledgePoint("t", "XA01", 3, "P-1", "每日最多1片", "第1批"))
    first = to_3101_result(Finding(**values))
    assert first["vola_evid"] == "依据：每日最多1片（第1批）；cnt=2；k.max=1"
    assert first["knowledge"] == {"table": "t", "key": "XA01", "file_row": 3, "point_id": "P-1",
                                  "text": "每日最多1片", "source": "第1批"}
    assert first["judge_result_detail_dtos"] == [{"rx_id": "L1", "vola_item_type": "1"},
                                                 {"rx_id": "L0", "vola_item_type": "2"}]
    first["knowledge"]["text"] = "changed by a caller"  # each result has its own knowledge entry
    assert to_3101_result(Finding(**values))["knowledge"]["text"] == "每日最多1片"
    values["knowledge"] = KnowledgePoint(None, None, None, None, None, None)  # no text: no 依据 head
    assert to_3101_result(Finding(**values))["vola_evid"] == "cnt=2；k.max=1"


def test_daily_dose_from_remembered_parts_is_derived_alike():
    """A new (dose text, frequency text) pair is derived from each text's remembered value: the same
    quantity, or the same unknown, as values.derive gives."""
    from claimaudit.engine.values import derive
    doses = ["500mg", "0.5g", "1 g", "2片", "10ml", "300µg", "abc", "", None, "1000 mg", "0.25 g", "100IU", "5 mg"]
    freqs = ["tid", "bid", "qd", "q8h", "每日3次", "2次/日", "prn", "st", "", None, "qid", "1次/日", "每周两次"]
    for rounds in range(2):  # parts made, then parts remembered
        for d in doses:
            for f in freqs:
                line = {"sin_dos_dscr": d, "used_frqu_dscr": f}
                for memo in (codegen._memos["daily_dose"],):
                    memo.clear()
                got, want = codegen.derived_value("daily_dose", line), derive("daily_dose", line)
                assert type(got) is type(want) and got == want, (d, f)
