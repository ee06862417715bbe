"""Cross-line rules (window, pair, requires): the reference, batch (both kernel backends, any batch size),
inline (with history lines) and a compiled bundle agree on every example of the history pack and on
random patient histories; input order and batch boundaries never change a finding."""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine import kernels
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.bundle import load_bundle, write_bundle
from claimaudit.engine.findings import INSUFFICIENT, ROLE_INVOLVED, VIOLATION
from claimaudit.engine.inline import Screener
from claimaudit.engine.kernels import window_twin
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo_history"
BACKENDS = kernels.available()
from claims_schema import SCHEMA  # noqa: E402


@pytest.fixture(scope="module")
def plan():
    rs = load_ruleset(PACK)
    assert rs.ok, rs.render_diagnostics()
    return build_plan(rs)


def keys(findings):
    return sorted(f.key() for f in findings)


def batch_keys(plan, lines, backend, batch_rows=1 << 20):
    engine = BatchEngine(plan, kernels=backend)
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA), batch_rows=batch_rows)
    return keys(engine.findings(hits, cols))


def assert_all_agree(plan, lines, batch_sizes=(1 << 20, 1, 3)):
    want = keys(ReferenceEngine(plan.ruleset).run(lines))
    for b in BACKENDS:
        for size in batch_sizes:
            got = batch_keys(plan, lines, b, size)
            assert got == want, f"batch-{b} at {size} lines per batch differs: {set(got) ^ set(want)}"
    got = keys(Screener(plan, stages=None).screen_lines(lines))
    assert got == want, f"inline differs: {set(got) ^ set(want)}"
    return want


def test_every_history_example_agrees(plan):
    total = 0
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            total += len(assert_all_agree(plan, example_lines(example)))
    assert total >= 20


def test_bundle_gives_the_same_findings(plan, tmp_path):
    write_bundle(plan, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            lines = example_lines(example)
            want = keys(ReferenceEngine(plan.ruleset).run(lines))
            assert batch_keys(loaded, lines, BACKENDS[-1]) == want, rule.code
            assert keys(Screener(loaded, stages=None).screen_lines(lines)) == want, rule.code


# ---- random patient histories ------------------------------------------------------------------

CODES = ["XB01ACA056B002020101763", "003107000010000", "003107000030000", "001101000020000", "250302001000000",
         "XC10AAA010A001010101234", "XC10AAR100A001010105678", "XJ01FAK067A001010101111",
         "XC10AAS060A001010102222", "T000100001", "T000200001", "T001200001", "C00201050010000000000000001",
         "330803014000000", "XJ01DHM085B001010101234", "XJ01DDA060B001010101111", "C00301010010000000000000001",
         "XA10BAE098A001010102233"]


def history_lines(rng: random.Random, n: int, n_patients: int = 3) -> list[dict]:
    base = {name: None for name in CLAIM_FIELDS}
    out = []
    encounters = {}
    for i in range(n):
        psn = f"P{rng.randrange(n_patients)}"
        enc = f"{psn}-E{rng.randrange(3)}"
        if enc not in encounters:
            start = dt.datetime(2025, 1, 1) + dt.timedelta(days=rng.randrange(60), hours=rng.randrange(12))
            encounters[enc] = dict(mdtrt_id=enc, begntime=start, endtime=start + dt.timedelta(days=rng.randrange(1, 9)),
                                   med_type=rng.choice(["11", "21", "41"]), fixmedins_code=rng.choice(["H1", "H2"]))
        e = encounters[enc]
        code = rng.choice(CODES)
        t = None if rng.random() < 0.05 else e["begntime"] + dt.timedelta(hours=rng.choice([0, 0, 3, 30, 200]))
        line = dict(base, psn_no=psn, gend="1", brdy=dt.date(1960, 1, 1), feedetl_sn=f"L{i:03d}", **e,
                    fee_ocur_time=t, med_list_codg=code, rxno=rng.choice(["R1", "R2", None]),
                    list_type="102" if code.startswith("T") else "101", cnt=float(rng.choice([1, 2, 3])),
                    pric=float(rng.choice([5, 60, 1200])), prd_days=rng.choice([None, 7.0, 30.0]))
        line["det_item_fee_sumamt"] = line["cnt"] * line["pric"]
        line["inscp_scp_amt"] = line["det_item_fee_sumamt"]
        out.append(line)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40))
def test_random_histories_agree(plan, seed, n):
    assert_all_agree(plan, history_lines(random.Random(seed), n), batch_sizes=(1 << 20, 7))


def test_many_random_histories_agree_and_find_something(plan):
    lines = history_lines(random.Random(7), 400, n_patients=12)
    found = assert_all_agree(plan, lines, batch_sizes=(1 << 20, 1000, 13))
    outcomes = {k[1] for k in found}
    rules = {k[2] for k in found}
    assert outcomes == {VIOLATION, INSUFFICIENT}
    assert len(rules) >= 8, rules  # most cross-line rules fire on this data


def test_line_ids_with_surrounding_blanks_order_as_trimmed(plan):
    """Ties on patient, time and encounter are broken by the trimmed line id, as the row reader reads it:
    padding (ASCII or full-width spaces) must not reorder lines."""
    rng = random.Random(5)
    lines = history_lines(rng, 160, n_patients=3)
    padded = [dict(line, feedetl_sn=rng.choice(["", " ", "  ", "\u3000"]) + line["feedetl_sn"] + rng.choice(["", " "]))
              for line in lines]
    want = keys(ReferenceEngine(plan.ruleset).run(lines))  # the ids as the row reader reads them: trimmed
    assert any(k[1] == VIOLATION for k in want)
    for b in BACKENDS:
        for size in (1 << 20, 9):
            assert batch_keys(plan, padded, b, size) == want


def test_input_order_does_not_matter(plan):
    lines = history_lines(random.Random(11), 200, n_patients=5)
    want = keys(ReferenceEngine(plan.ruleset).run(lines))
    shuffled = list(lines)
    random.Random(3).shuffle(shuffled)
    for b in BACKENDS:
        assert batch_keys(plan, shuffled, b, 17) == want
    assert keys(ReferenceEngine(plan.ruleset).run(shuffled)) == want


# ---- inline with history lines -----------------------------------------------------------------------


def _order(code, name, when, current, rx_id, mdtrt="E2"):
    return {"rx_id": rx_id, "rxno": "RX-" + mdtrt, "hilist_code": code, "hilist_name": name, "cnt": 1, "pric": 20,
            "sumamt": 20, "drord_begn_date": when, "curr_drord_flag": current}


def test_inline_flags_only_current_orders_and_cites_history_as_involved(plan):
    request = {"patient_dtos": [{
        "patn_id": "P-1", "gend": "1", "brdy": "1960-01-01",
        "fsi_encounter_dtos": [
            {"mdtrt_id": "E1", "medins_id": "H1", "med_type": "11", "adm_date": "2025-05-01 09:00:00",
             "fsi_order_dtos": [_order("XJ01FAK067A001010101111", "克拉霉素片", "2025-05-01 09:00:00", "0", "H-1", "E1")]},
            {"mdtrt_id": "E2", "medins_id": "H1", "med_type": "11", "adm_date": "2025-05-02 09:00:00",
             "fsi_order_dtos": [_order("XC10AAS060A001010102222", "辛伐他汀片", "2025-05-02 09:00:00", "1", "C-1")]},
        ]}]}
    response = Screener(plan, stages=None).screen(request)
    ddi = [r for r in response["result"] if r["rule_id"] == "DEMO_DDI"]
    assert len(ddi) == 1
    detail = {(d["rx_id"], d["vola_item_type"]) for d in ddi[0]["judge_result_detail_dtos"]}
    assert detail == {("C-1", "1"), ("H-1", str(ROLE_INVOLVED))}
    assert "克拉霉素片" in ddi[0]["vola_cont"] and "辛伐他汀片" in ddi[0]["vola_cont"]
    # the history order alone is never flagged
    request["patient_dtos"][0]["fsi_encounter_dtos"][1]["fsi_order_dtos"][0]["curr_drord_flag"] = "0"
    assert Screener(plan, stages=None).screen(request)["result"] == []


def test_inline_with_forty_history_lines_agrees_with_the_reference(plan):
    lines = history_lines(random.Random(5), 50, n_patients=1)
    current = {l["feedetl_sn"] for l in lines[-10:]}
    want = keys(ReferenceEngine(plan.ruleset).run(lines, current=lambda l: l["feedetl_sn"] in current))
    got = keys(Screener(plan, stages=None).screen_lines(lines, current))
    assert got == want
    assert all(k[3] in current for k in got)


def _as_request(lines: list, current: set) -> dict:
    """One patient's lines as a 3101 request: an encounter per mdtrt_id, an order per line."""
    iso = lambda v: None if v is None else v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    encounters: dict = {}
    for line in lines:
        encounters.setdefault(line["mdtrt_id"], []).append(line)
    return {"patient_dtos": [{"patn_id": lines[0]["psn_no"], "gend": lines[0]["gend"], "brdy": iso(lines[0]["brdy"]),
        "fsi_encounter_dtos": [{
            "mdtrt_id": m, "medins_id": ls[0]["fixmedins_code"], "med_type": ls[0]["med_type"],
            "adm_date": iso(ls[0]["begntime"]), "dscg_date": iso(ls[0]["endtime"]),
            "fsi_order_dtos": [{"rx_id": l["feedetl_sn"], "rxno": l["rxno"], "hilist_code": l["med_list_codg"],
                                "hilist_type": l["list_type"], "cnt": l["cnt"], "pric": l["pric"],
                                "sumamt": l["det_item_fee_sumamt"], "drord_begn_date": iso(l["fee_ocur_time"]),
                                "curr_drord_flag": "1" if l["feedetl_sn"] in current else "0"} for l in ls]}
            for m, ls in encounters.items()]}]}


def test_the_request_mapping_keeps_every_field_a_window_reads(plan):
    """screen(request) maps only the fields the rules read; a window's own fields (a prescription's rxno, the
    quantities it sums) are among them, so the whole call finds what the reference finds on every field."""
    from claimaudit.connectors.request import request_lines
    screener = Screener(plan, stages=None)
    mapped = {name for name, _ in screener.fields}
    for rule in plan.ruleset.rules:
        assert rule.window_fields() <= mapped, rule.code
    found = 0
    for seed in range(12):
        lines = history_lines(random.Random(seed), 50, n_patients=1)
        current = {l["feedetl_sn"] for l in lines[-10:]}
        doc = _as_request(lines, current)
        full = request_lines(doc)  # every field of the request, by the general mapping
        want = list(ReferenceEngine(plan.ruleset).run(full.lines, current=lambda l: l["feedetl_sn"] in full.current))
        response = screener.screen(doc)
        assert sorted(e["jr_id"] for e in response["result"]) == \
            sorted(f.finding_id for f in want if f.outcome == VIOLATION)
        assert len(response["insufficient_data"]) == sum(1 for f in want if f.outcome == INSUFFICIENT)
        found += len(response["result"])
    assert found  # the requests make the rules find something


# ---- undatable lines, explanations --------------------------------------------------------------------


def test_line_without_time_is_insufficient_and_left_out_of_windows(plan):
    ex = plan.ruleset.rule("DEMO_DAILY_FREQ").examples[0]
    lines = example_lines(ex)
    lines[0]["fee_ocur_time"] = None
    found = ReferenceEngine(plan.ruleset, rule_codes=["DEMO_DAILY_FREQ"]).run(lines)
    outcomes = {(f.line_id, f.outcome) for f in found}
    # L1 has no place in the day's order; L2 alone is within the limit
    assert outcomes == {("L1", INSUFFICIENT)}
    assert assert_all_agree(plan, lines)


def test_finding_explains_window_values_and_involved_lines(plan):
    ex = plan.ruleset.rule("DEMO_CYCLE").examples[0]
    (f,) = [f for f in ReferenceEngine(plan.ruleset, rule_codes=["DEMO_CYCLE"]).run(example_lines(ex))
            if f.outcome == VIOLATION]
    assert dict(f.evidence)["w.count"] == "2"
    assert f.lines == (("L2", 1), ("L1", 2))
    assert f.knowledge.text == "糖化血红蛋白测定30天内限1次" and f.knowledge.table == "cycle_limit"


# ---- range kernels: Cython and twin agree ---------------------------------------------------------------


@pytest.mark.skipif("cython" not in BACKENDS, reason="compiled kernels not built")
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_range_kernels_cython_equals_twin(data):
    from claimaudit.engine.kernels import _window
    n = data.draw(st.integers(0, 30))
    prev = np.array(data.draw(st.lists(st.integers(-1, n + 5), min_size=n, max_size=n)), np.int64)
    q = data.draw(st.integers(0, 10))
    lo = np.array(data.draw(st.lists(st.integers(0, n), min_size=q, max_size=q)), np.int64)
    hi = np.array([data.draw(st.integers(a, n)) for a in lo], np.int64)
    assert np.array_equal(_window.range_distinct(lo, hi, prev), window_twin.range_distinct(lo, hi, prev))
    member = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), np.int64)
    query = np.array(data.draw(st.lists(st.integers(0, 5), min_size=q, max_size=q)), np.int64)
    end = np.array(data.draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n)), np.float64)
    known = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool).view(np.uint8)
    day = np.array(data.draw(st.lists(st.integers(-20, 20), min_size=q, max_size=q)), np.float64)
    assert np.array_equal(_window.range_overlap(lo, hi, member, query, end, known, day),
                          window_twin.range_overlap(lo, hi, member, query, end, known, day))


def test_range_kernels_known_answers():
    lo, hi = np.array([0, 1, 2], np.int64), np.array([4, 4, 2], np.int64)
    prev = np.array([-1, 0, -1, 2], np.int64)  # values a a b b
    for k in {window_twin, kernels_window()}:
        assert list(k.range_distinct(lo, hi, prev)) == [2.0, 2.0, 0.0]
        out = k.range_overlap(np.array([0], np.int64), np.array([3], np.int64), np.array([7, 8, 9], np.int64),
                              np.array([9], np.int64), np.array([12.0, 15.0, 99.0]),
                              np.array([1, 1, 1], np.uint8), np.array([10.0]))
        assert list(out) == [5.0]  # 15 - 10 from line 8; line 9 is the line itself


@pytest.mark.skipif("cython" not in BACKENDS, reason="compiled kernels not built")
@settings(max_examples=80, deadline=None)
@given(st.data())
def test_order_and_group_kernels_cython_equal_twin(data):
    """total_order, merge_sides, group_runs, run_bounds, pair_sweep and contiguous_groups: same arrays."""
    from claimaudit.engine.kernels import _window
    n = data.draw(st.integers(0, 25))
    ints = lambda lo, hi, size: np.array(data.draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size)),
                                         np.int64)
    patient, time, encounter = ints(-1, 3, n), ints(0, 4, n), ints(-1, 2, n)
    known = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool).view(np.uint8)
    ids = [data.draw(st.text("ab 1", max_size=3)).encode() for _ in range(n)]
    buffer, addr, length = _in_place(ids)
    args = (patient, 4, time, known, encounter, addr, length)
    assert np.array_equal(_window.total_order(*args), window_twin.total_order(*args))

    k_line, p_line = np.sort(ints(0, 6, n)), np.sort(ints(0, 6, n // 2))
    sides = (k_line, ints(0, 4, n), p_line, ints(0, 4, n // 2))
    for a, b in zip(_window.merge_sides(*sides), window_twin.merge_sides(*sides)):
        assert np.array_equal(a, b)

    group, key = ints(0, 3, n), ints(0, 3, n)
    perm_c, start_c = _window.group_runs(group, 4, key)
    perm_t, start_t = window_twin.group_runs(group, 4, key)
    assert np.array_equal(perm_c, perm_t) and np.array_equal(start_c, start_t)
    m_key, m_rank = key[perm_c], perm_c.astype(np.int64)
    m_day = np.zeros(n, np.int64)
    for g in range(4):  # days never decrease along a run (total order)
        a, b = start_c[g], start_c[g + 1]
        m_day[a:b] = np.array([time[i] for i in perm_c[a:b]]) if b > a else m_day[a:b]
        m_day[a:b] = np.maximum.accumulate(m_day[a:b]) if b > a else m_day[a:b]
    q = data.draw(st.integers(0, 8))
    q_args = (ints(-1, 3, q), ints(0, 3, q), ints(0, n + 1, q), ints(-2, 5, q))
    for mode in (0, 1, 2):
        for a, b in zip(_window.run_bounds(m_key, m_rank, m_day, start_c, *q_args, mode),
                        window_twin.run_bounds(m_key, m_rank, m_day, start_c, *q_args, mode)):
            assert np.array_equal(a, b)

    lines = max(n, 1)
    line_group = np.maximum.accumulate(ints(-1, 3, lines))  # groups contiguous along the total order
    line_group[ints(0, lines - 1, 2)] = -1
    e_line, e_row, e_flag = _window.merge_sides(np.sort(ints(0, lines - 1, n)), ints(0, 3, n),
                                                np.sort(ints(0, lines - 1, n)), ints(0, 3, n))
    ok = np.array(data.draw(st.lists(st.booleans(), min_size=lines, max_size=lines)), bool).view(np.uint8)
    day = np.maximum.accumulate(ints(0, 9, lines))
    first = ints(0, 9, e_line.size)
    for looks in (0, 1, 2):
        for strict in (0, 1):
            for fd in ((first,) if strict else ()) + (np.zeros(0, np.int64),):
                swept = (e_line, e_row, e_flag, line_group, ok, day, fd, looks, strict)
                assert np.array_equal(_window.pair_sweep(*swept), window_twin.pair_sweep(*swept))
    codes = ints(-1, 3, lines).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(ints(0, 2, 4))]).astype(np.int64)
    csr = (starts, ints(0, 9, int(starts[-1])), ints(1, 3, int(starts[-1])).astype(np.int8))
    for a, b in zip(_window.expand_entries(codes, ok, *csr), window_twin.expand_entries(codes, ok, *csr)):
        assert np.array_equal(a, b)
    assert _window.edges_may_be_blank(addr, length) == window_twin.edges_may_be_blank(addr, length) == \
        any(b != b.strip() for b in ids)
    del buffer
    period = np.sort(ints(0, 2, lines))
    if _contiguous(line_group, period):  # the kernel's precondition
        assert np.array_equal(_window.contiguous_groups(line_group, period, ok),
                              window_twin.contiguous_groups(line_group, period, ok))


def _in_place(ids: list):
    """Byte strings laid out in one buffer, as (buffer, address, length) per string (kernels read in place)."""
    buffer = np.frombuffer(b"".join(ids) + b"\0", np.uint8).copy()
    starts = np.concatenate([[0], np.cumsum([len(b) for b in ids])[:-1]]).astype(np.int64) if ids else \
        np.zeros(0, np.int64)
    return buffer, buffer.ctypes.data + starts, np.array([len(b) for b in ids], np.int64)


def _contiguous(patient, period) -> bool:
    """Whether each (patient, period) pair occupies one stretch (the kernel's precondition)."""
    seen, last = set(), None
    for key in zip(patient.tolist(), period.tolist()):
        if key[0] < 0:
            continue
        if key != last and key in seen:
            return False
        seen.add(key)
        last = key
    return True


def test_order_kernels_known_answers():
    """Ties on patient and time are broken by encounter, then by line id bytes; a line without a time comes
    first; an unordered pair flags only the later line, and only within its group."""
    for k in {window_twin, kernels_window()}:
        buffer, addr, length = _in_place([b"b", b"a", b"", b"c"])
        perm = k.total_order(np.array([0, 0, 0, 0], np.int64), 1, np.array([5, 5, 9, 1], np.int64),
                             np.array([1, 1, 1, 0], np.uint8), np.array([0, 0, -1, 0], np.int64), addr, length)
        assert list(perm) == [3, 1, 0, 2]
        line, row, flag = k.merge_sides(np.array([0, 0, 2], np.int64), np.array([5, 3, 3], np.int64),
                                        np.array([0, 1], np.int64), np.array([3, 3], np.int64))
        assert (list(line), list(row), list(flag)) == ([0, 0, 1, 2], [3, 5, 3, 3], [3, 1, 2, 1])
        # lines 0, 1 in group 0; line 2 in group 1: line 1 (B) follows line 0 (A) -> flagged; line 2 alone
        out = k.pair_sweep(np.array([0, 1, 2], np.int64), np.array([7, 7, 7], np.int64),
                           np.array([1, 2, 2], np.int8), np.array([0, 0, 1], np.int64), np.ones(3, np.uint8),
                           np.zeros(3, np.int64), np.zeros(0, np.int64), 2, 1)
        assert list(out) == [0, 1, 0]


def kernels_window():
    from claimaudit.engine.kernels import window
    return window.backend()


def test_line_without_patient_id_is_insufficient_for_history_rules(plan):
    ex = plan.ruleset.rule("DEMO_CYCLE").examples[0]
    lines = example_lines(ex)
    lines[1]["psn_no"] = None
    found = {(f.line_id, f.outcome, f.reason) for f in
             ReferenceEngine(plan.ruleset, rule_codes=["DEMO_CYCLE"]).run(lines)}
    assert found == {("L2", INSUFFICIENT, "psn_no (person) is missing")}
    assert assert_all_agree(plan, lines)


# ---- reading the collected lines from many chunks (engine/columns.py) --------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_chunked_readers_equal_arrow_take(data):
    """values_at, text_codes_at and text_ranks_at read a many-chunk column (each chunk with its own
    dictionary, some sharing one, nulls, blanks, padding) as Arrow's take + the row reader would."""
    from claimaudit.engine.columns import LineColumns, text_codes_at, text_ranks_at, values_at
    sizes = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=5))
    numbers = [data.draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=k, max_size=k)) for k in sizes]
    texts = [data.draw(st.lists(st.one_of(st.none(), st.sampled_from(["a", " a", "b ", "", "\u3000c", "B"])),
                                min_size=k, max_size=k)) for k in sizes]
    num_col = pa.chunked_array([pa.array(c, pa.int32()) for c in numbers], pa.int32())
    shared = pa.array(["a", " a", "b ", "", "\u3000c", "B"])
    text_chunks = [pa.DictionaryArray.from_arrays(pa.array([None if v is None else shared.to_pylist().index(v)
                                                            for v in c], pa.int32()), shared)
                   if i % 2 else pa.array(c, pa.string()).dictionary_encode() for i, c in enumerate(texts)]
    text_col = pa.chunked_array(text_chunks, pa.dictionary(pa.int32(), pa.string()))
    n = sum(sizes)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n))) if n else [], np.int64)
    values, known = values_at(num_col, rows, np.float64)
    want = num_col.take(pa.array(rows, pa.int64())).to_pylist()
    assert [v if k else None for v, k in zip(values.tolist(), known.tolist())] == [None if w is None else float(w) for w in want]
    typed = text_codes_at(text_col, rows)
    read = LineColumns(pa.table({"mdtrt_id": text_col.cast(pa.string()).take(pa.array(rows, pa.int64()))}),
                       identity_checked=True).get("mdtrt_id")
    assert [typed.dictionary[c] if c >= 0 else None for c in typed.codes] == \
        [read.dictionary[c] if c >= 0 else None for c in read.codes]
    ranks, count = text_ranks_at(text_col, rows)
    trimmed = [None if c < 0 else read.dictionary[c] for c in read.codes]
    assert [r < 0 for r in ranks.tolist()] == [t is None for t in trimmed]
    rank_of = {t: r for t, r in zip(trimmed, ranks.tolist()) if t is not None}
    assert all(rank_of[t] == r for t, r in zip(trimmed, ranks.tolist()) if t is not None)  # one rank per text
    by_text = [rank_of[t] for t in sorted(rank_of)]
    assert by_text == sorted(by_text) and len(set(by_text)) == len(by_text) and count >= len(by_text)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_renders_cross_line_hits_per_patient_as_the_reference_does(plan, backend):
    """Cross-line hits rendered per patient by the compiled cross-line rules (BatchEngine._cross_findings)
    give, in every field of the written record, the findings the reference renders for the same hits."""
    lines = history_lines(random.Random(17), 600, n_patients=15)
    engine = BatchEngine(plan, kernels=backend)
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA))
    engine.compile_renderers_at = 1
    cross = {r.rule_index for r in engine.cross_rules}
    relevant = engine._cross_line_dicts(hits, cross)
    by_patient = engine._cross_findings(hits, cross, relevant)
    assert len(by_patient) >= 0.9 * int(np.isin(hits.rule, list(cross)).sum()) > 50
    compiled = [f.to_record() for f in engine.findings(hits, cols)]
    engine.compile_renderers_at = len(hits) + 1  # the reference renders every hit
    assert compiled == [f.to_record() for f in engine.findings(hits, cols)]
    assert {r["outcome"] for r in compiled} == {VIOLATION, INSUFFICIENT}
    assert any(len(r["involved_lines"]) > 60 for r in compiled)  # involved lines are compared too
