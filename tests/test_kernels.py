"""The batch kernels: the compiled (Cython) implementation and its pure-Python twin give identical
arrays on random valid inputs, and both give the known answers on hand-written cases; the backend
is chosen by CLAIMAUDIT_KERNELS."""
from __future__ import annotations

import datetime as dt
import importlib.machinery

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.engine import kernels
from claimaudit.engine.kernels import twin

EPOCH = dt.date(1970, 1, 1)
HAVE_CYTHON = "cython" in kernels.available()
needs_cython = pytest.mark.skipif(not HAVE_CYTHON, reason="compiled kernels not built in this environment")
BACKENDS = [pytest.param("python", id="python"), pytest.param("cython", id="cython", marks=needs_cython)]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# proleptic Gregorian days since 1970-01-01 that Python's datetime.date can represent (years 1..9999)
MIN_DAY = (dt.date(1, 1, 1) - EPOCH).days
MAX_DAY = (dt.date(9999, 12, 31) - EPOCH).days


def days(d: dt.date) -> int:
    return (d - EPOCH).days


def i32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def native():
    return kernels.backend("cython")


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)


# ---- the build ----------------------------------------------------------------------------------------


def test_compiled_kernels_are_built_in_this_checkout():
    """pip install -e . builds the extension; a broken build must not hide behind the twin."""
    assert kernels.available() == ("python", "cython")
    assert kernels._native is not None
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert kernels._native.__file__.endswith(suffixes), kernels._native.__file__
    assert kernels.backend("cython") is kernels._native
    for name in kernels.NAMES:
        assert callable(getattr(kernels._native, name)), name
        assert callable(getattr(twin, name)), name


# ---- backend selection --------------------------------------------------------------------------------


def test_backend_follows_the_environment(monkeypatch):
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert kernels.backend() is twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert kernels.backend() is kernels._native
    monkeypatch.delenv("CLAIMAUDIT_KERNELS", raising=False)
    assert kernels.backend() is kernels._native  # the default when built


def test_explicit_backend_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert kernels.backend("python") is twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert kernels.backend("cython") is kernels._native


@pytest.mark.parametrize("bad", ["numba", "Cython", "PYTHON", " python", "c"])
def test_backend_rejects_a_bad_environment_value(monkeypatch, bad):
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", bad)
    with pytest.raises(ValueError, match="CLAIMAUDIT_KERNELS"):
        kernels.backend()


def test_backend_rejects_a_bad_name(monkeypatch):
    monkeypatch.delenv("CLAIMAUDIT_KERNELS", raising=False)
    with pytest.raises(ValueError, match="'fortran'"):
        kernels.backend("fortran")


def test_batch_engine_uses_the_selected_backend(monkeypatch):
    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.batch import BatchEngine
    from claimaudit.engine.plan import build_plan
    from pathlib import Path

    plan = build_plan(load_ruleset(Path(__file__).resolve().parents[1] / "rulesets" / "demo"))
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert BatchEngine(plan).kernels is twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert BatchEngine(plan).kernels is kernels._native
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "bogus")
    with pytest.raises(ValueError):
        BatchEngine(plan)


# ---- age_years: known answers -------------------------------------------------------------------------

AGE_CASES = [
    # (birth, service, full years)
    (dt.date(2007, 6, 1), dt.date(2025, 6, 1), 18),  # on the birthday
    (dt.date(2007, 6, 1), dt.date(2025, 5, 31), 17),  # the day before
    (dt.date(2007, 6, 1), dt.date(2025, 6, 2), 18),
    (dt.date(2013, 6, 1), dt.date(2025, 5, 31), 11),
    (dt.date(2020, 2, 29), dt.date(2021, 2, 28), 0),  # Feb 29 birthday, non-leap year: not yet
    (dt.date(2020, 2, 29), dt.date(2021, 3, 1), 1),
    (dt.date(2020, 2, 29), dt.date(2023, 2, 28), 2),
    (dt.date(2020, 2, 29), dt.date(2024, 2, 28), 3),
    (dt.date(2020, 2, 29), dt.date(2024, 2, 29), 4),
    (dt.date(1896, 2, 29), dt.date(1900, 2, 28), 3),  # 1900 is not a leap year
    (dt.date(1896, 2, 29), dt.date(1900, 3, 1), 4),
    (dt.date(1950, 3, 1), dt.date(1969, 12, 31), 19),  # both dates before 1970
    (dt.date(1950, 3, 1), dt.date(1970, 2, 28), 19),
    (dt.date(1950, 3, 1), dt.date(1970, 3, 1), 20),
    (dt.date(1969, 12, 31), dt.date(1970, 1, 1), 0),
    (dt.date(1900, 1, 1), dt.date(2000, 1, 1), 100),
    (dt.date(1899, 12, 31), dt.date(1999, 12, 30), 99),
    (dt.date(1970, 1, 1), dt.date(1970, 1, 1), 0),
    (dt.date(2025, 1, 1), dt.date(2025, 2, 10), 0),
    (dt.date(2000, 12, 31), dt.date(2001, 1, 1), 0),
    (dt.date(2000, 1, 1), dt.date(2000, 12, 31), 0),
    (dt.date(1, 1, 1), dt.date(9999, 12, 31), 9998),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_age_years_known_answers(backend):
    k = kernels.backend(backend)
    birth = i32([days(b) for b, _, _ in AGE_CASES])
    service = i32([days(s) for _, s, _ in AGE_CASES])
    got = k.age_years(birth, service)
    assert got.dtype == np.int32
    assert got.tolist() == [want for _, _, want in AGE_CASES]


@pytest.mark.parametrize("backend", BACKENDS)
def test_age_years_empty(backend):
    got = kernels.backend(backend).age_years(i32([]), i32([]))
    assert got.shape == (0,) and got.dtype == np.int32


def full_years(b: dt.date, d: dt.date) -> int:
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


_day = st.integers(MIN_DAY, MAX_DAY)
_recent_day = st.integers(days(dt.date(1890, 1, 1)), days(dt.date(2100, 12, 31)))


@needs_cython
@SETTINGS
@given(pairs=st.lists(st.tuples(st.one_of(_recent_day, _day), st.one_of(_recent_day, _day)), max_size=40))
def test_age_years_cython_equals_twin(pairs):
    birth = i32([b for b, _ in pairs])
    service = i32([s for _, s in pairs])
    expected = twin.age_years(birth, service)
    assert_same(native().age_years(birth, service), expected)
    for (b, s), got in zip(pairs, expected.tolist()):
        assert got == full_years(EPOCH + dt.timedelta(b), EPOCH + dt.timedelta(s))


@needs_cython
@SETTINGS
@given(birth=st.dates(dt.date(1890, 1, 1), dt.date(2100, 12, 31)), offset=st.integers(-3, 3),
       years=st.integers(0, 120))
def test_age_years_around_birthdays(birth, offset, years):
    """Dates near an anniversary are where an off-by-one would show."""
    try:
        anniversary = birth.replace(year=birth.year + years)
    except ValueError:  # Feb 29 in a non-leap year
        anniversary = dt.date(birth.year + years, 3, 1)
    service = anniversary + dt.timedelta(offset)
    b, s = i32([days(birth)]), i32([days(service)])
    want = full_years(birth, service)
    assert twin.age_years(b, s).tolist() == [want]
    assert native().age_years(b, s).tolist() == [want]


# ---- random CSR structures ----------------------------------------------------------------------------


@st.composite
def csr(draw, n_groups: int, n_values: int, max_len: int = 4, sorted_unique: bool = True):
    """(offsets int64 [n_groups + 1], items int32): monotone offsets, items in [0, n_values)."""
    groups = []
    for _ in range(n_groups):
        if n_values == 0:
            groups.append([])
            continue
        if sorted_unique:
            g = sorted(draw(st.sets(st.integers(0, n_values - 1), max_size=min(max_len, n_values))))
        else:
            g = draw(st.lists(st.integers(0, n_values - 1), max_size=max_len))
        groups.append(g)
    offsets = np.zeros(n_groups + 1, np.int64)
    offsets[1:] = np.cumsum([len(g) for g in groups]) if groups else []
    items = i32([x for g in groups for x in g])
    return offsets, items, groups


@st.composite
def pairs(draw, n_lines: int, n_rows: int, max_size: int = 30):
    if n_lines == 0 or n_rows == 0:
        return i64([]), i64([])
    ps = draw(st.lists(st.tuples(st.integers(0, n_lines - 1), st.integers(0, n_rows - 1)), min_size=1,
                       max_size=max_size))
    return i64([a for a, _ in ps]), i64([b for _, b in ps])


@st.composite
def prefix_inputs(draw):
    n_lines = draw(st.integers(1, 6))
    n_codes = draw(st.integers(0, 8))  # distinct line codes (dictionary)
    n_prefixes = draw(st.integers(0, 6))  # distinct prefixes
    n_rows = draw(st.integers(1, 5))
    n_lists = draw(st.integers(0, 4))
    code = st.integers(-1, n_codes - 1)
    line_main = i32([draw(code) for _ in range(n_lines)])
    list_ids = i32([draw(st.integers(-1, n_lists - 1)) for _ in range(n_lines)])
    list_offsets, list_items, lists = draw(csr(n_lists, n_codes, sorted_unique=False))
    match_offsets, match_items, matches = draw(csr(n_codes, n_prefixes))
    row_offsets, row_items, rows = draw(csr(n_rows, n_prefixes))
    pair_line, pair_row = draw(pairs(n_lines, n_rows))
    args = (pair_line, pair_row, line_main, list_ids, list_offsets, list_items, match_offsets, match_items,
            row_offsets, row_items)
    # the definition, over sets
    expected = []
    for li, ri in zip(pair_line.tolist(), pair_row.tolist()):
        codes = ([line_main[li]] if line_main[li] >= 0 else []) + (lists[list_ids[li]] if list_ids[li] >= 0 else [])
        expected.append(int(any(set(matches[c]) & set(rows[ri]) for c in codes)))
    return args, np.array(expected, np.uint8)


@st.composite
def member_inputs(draw):
    n_lines = draw(st.integers(1, 8))
    n_codes = draw(st.integers(0, 8))
    n_rows = draw(st.integers(1, 6))
    line_codes = i32([draw(st.integers(-1, n_codes - 1)) for _ in range(n_lines)])
    row_offsets, row_items, rows = draw(csr(n_rows, n_codes, max_len=5))
    pair_line, pair_row = draw(pairs(n_lines, n_rows))
    expected = np.array([int(line_codes[li] >= 0 and int(line_codes[li]) in rows[ri])
                         for li, ri in zip(pair_line.tolist(), pair_row.tolist())], np.uint8)
    return (pair_line, pair_row, line_codes, row_offsets, row_items), expected


@SETTINGS
@given(case=prefix_inputs())
def test_prefix_any_twin_follows_the_definition(case):
    args, expected = case
    assert_same(twin.prefix_any(*args), expected)


@needs_cython
@SETTINGS
@given(case=prefix_inputs())
def test_prefix_any_cython_equals_twin(case):
    args, expected = case
    assert_same(native().prefix_any(*args), twin.prefix_any(*args))


@SETTINGS
@given(case=member_inputs())
def test_member_twin_follows_the_definition(case):
    args, expected = case
    assert_same(twin.member(*args), expected)


@needs_cython
@SETTINGS
@given(case=member_inputs())
def test_member_cython_equals_twin(case):
    args, expected = case
    assert_same(native().member(*args), twin.member(*args))


def test_every_kernel_has_a_property_test():
    from test_fused import test_run_family_cython_equals_twin  # the family VM's own tests

    tested = {"age_years": test_age_years_cython_equals_twin, "prefix_any": test_prefix_any_cython_equals_twin,
              "member": test_member_cython_equals_twin, "run_family": test_run_family_cython_equals_twin}
    assert set(kernels.NAMES) == set(tested)


# ---- prefix_any: known answers ------------------------------------------------------------------------
#
# Line codes (dictionary): 0 "XJ01CAA040E…", 1 "I63.900", 2 "E11.900", 3 "J06.900".
# Prefixes: 0 "XJ01", 1 "I63", 2 "E11", 3 "O24".   match_*: code c starts with these prefix ids.
# Rows: 0 {I63}, 1 {E11, O24}, 2 {} (no prefixes), 3 {XJ01, I63}.
MATCH_OFFSETS = i64([0, 1, 2, 3, 3])
MATCH_ITEMS = i32([0, 1, 2])
ROW_OFFSETS = i64([0, 1, 3, 3, 5])
ROW_ITEMS = i32([1, 2, 3, 0, 1])
# Lists (diagnosis lists of lines): 0 [E11.900, J06.900], 1 [] , 2 [J06.900]
LIST_OFFSETS = i64([0, 2, 2, 3])
LIST_ITEMS = i32([2, 3, 3])


def _prefix(k, line_main, list_ids, pair_line, pair_row):
    return k.prefix_any(i64(pair_line), i64(pair_row), i32(line_main), i32(list_ids), LIST_OFFSETS, LIST_ITEMS,
                        MATCH_OFFSETS, MATCH_ITEMS, ROW_OFFSETS, ROW_ITEMS).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_any_main_code_only(backend):
    k = kernels.backend(backend)
    # line 0: main I63.900, no list; line 1: main J06.900 (matches no prefix), no list
    got = _prefix(k, [1, 3], [-1, -1], [0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 0, 3])
    assert got == [1, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_any_list_only(backend):
    k = kernels.backend(backend)
    # line 0: no main code, list [E11.900, J06.900]; line 1: no main code, empty list; line 2: list [J06.900]
    got = _prefix(k, [-1, -1, -1], [0, 1, 2], [0, 0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 1, 3, 1, 3])
    assert got == [0, 1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_any_main_and_list(backend):
    k = kernels.backend(backend)
    # main J06.900 (no prefix) but list has E11.900: the list decides; main XJ01… with list: main decides
    got = _prefix(k, [3, 0], [0, 2], [0, 0, 1, 1, 1], [1, 0, 3, 1, 0])
    assert got == [1, 0, 1, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_any_no_codes(backend):
    k = kernels.backend(backend)
    got = _prefix(k, [-1, -1], [-1, 1], [0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 2, 3, 0, 1, 2, 3])
    assert got == [0] * 8


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_any_no_pairs(backend):
    got = kernels.backend(backend).prefix_any(i64([]), i64([]), i32([0]), i32([-1]), LIST_OFFSETS, LIST_ITEMS,
                                              MATCH_OFFSETS, MATCH_ITEMS, ROW_OFFSETS, ROW_ITEMS)
    assert got.shape == (0,) and got.dtype == np.uint8


# ---- member: known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_member_known_answers(backend):
    k = kernels.backend(backend)
    # rows: 0 {1, 3}, 1 {} (empty), 2 {0}, 3 {} (empty)
    row_offsets, row_items = i64([0, 2, 2, 3, 3]), i32([1, 3, 0])
    line_codes = i32([3, 0, -1, 2])
    got = k.member(i64([0, 0, 0, 0, 1, 1, 2, 2, 3, 3]), i64([0, 1, 2, 3, 0, 2, 0, 2, 0, 1]), line_codes,
                   row_offsets, row_items)
    assert got.dtype == np.uint8
    assert got.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_member_all_rows_empty(backend):
    k = kernels.backend(backend)
    got = k.member(i64([0, 1, 2]), i64([0, 1, 1]), i32([0, 1, -1]), i64([0, 0, 0]), i32([]))
    assert got.tolist() == [0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_member_no_pairs(backend):
    got = kernels.backend(backend).member(i64([]), i64([]), i32([]), i64([0]), i32([]))
    assert got.shape == (0,) and got.dtype == np.uint8
