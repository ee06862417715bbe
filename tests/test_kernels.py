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
              "member": test_member_cython_equals_twin, "run_family": test_run_family_cython_equals_twin,
              "take": test_take_cython_equals_twin, "dict_codes": test_dict_codes_cython_equals_twin,
              "blank_text": test_blank_text_cython_equals_twin, "floor_days": test_floor_days_cython_equals_twin,
              "ages": test_ages_cython_equals_twin, "lookup2": test_lookup2_cython_equals_twin,
              "ratio": test_ratio_cython_equals_twin, "expand_pairs": test_expand_pairs_cython_equals_twin}
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


# ---- column and candidate kernels: take, dict_codes, blank_text, floor_days, ages, lookup2, ratio,
# ---- expand_pairs -------------------------------------------------------------------------------------

_TABLE_DTYPES = [np.float64, np.int32, np.int64, np.uint8, np.bool_]


@st.composite
def take_inputs(draw):
    dtype = draw(st.sampled_from(_TABLE_DTYPES))
    m = draw(st.integers(1, 8))
    table = np.array(draw(st.lists(st.integers(0, 200), min_size=m, max_size=m)), dtype=dtype)
    idx_type = draw(st.sampled_from([np.int32, np.int64]))
    idx = np.array(draw(st.lists(st.integers(-m, m - 1), max_size=30)), dtype=idx_type)
    return table, idx


@SETTINGS
@given(case=take_inputs())
def test_take_twin_follows_numpy(case):
    table, idx = case
    assert_same(twin.take(table, idx), table[idx])


@needs_cython
@SETTINGS
@given(case=take_inputs())
def test_take_cython_equals_twin(case):
    table, idx = case
    assert_same(native().take(table, idx), twin.take(table, idx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_take_refuses_an_index_outside_the_table(backend):
    k = kernels.backend(backend)
    with pytest.raises(IndexError):
        k.take(np.array([1.0, 2.0]), i32([0, 2]))
    with pytest.raises(IndexError):
        k.take(np.array([1.0, 2.0]), i64([-3]))
    assert k.take(np.array([1.0, 2.0]), i32([])).shape == (0,)


def _bitmap(valid: list, offset: int) -> np.ndarray:
    bits = [False] * offset + list(valid)
    return np.packbits(np.array(bits + [False] * (-len(bits) % 8), bool), bitorder="little")


@st.composite
def dict_code_inputs(draw):
    m = draw(st.integers(1, 6))
    n = draw(st.integers(0, 25))
    indices = i32([draw(st.integers(0, m - 1)) for _ in range(n)])
    table = i32(draw(st.lists(st.integers(-1, 50), min_size=m, max_size=m)))
    offset = draw(st.integers(0, 9))
    valid = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    validity = _bitmap(valid, offset) if draw(st.booleans()) else np.zeros(0, np.uint8)
    if not len(validity):
        valid = [True] * n
    expected = i32([table[j] if v else -1 for j, v in zip(indices.tolist(), valid)])
    return (indices, validity, offset, table), expected


@SETTINGS
@given(case=dict_code_inputs())
def test_dict_codes_twin_follows_the_definition(case):
    (indices, validity, offset, table), expected = case
    out = np.empty(len(indices), np.int32)
    assert twin.dict_codes(indices, validity, offset, table, out) is out
    assert_same(out, expected)


@needs_cython
@SETTINGS
@given(case=dict_code_inputs())
def test_dict_codes_cython_equals_twin(case):
    (indices, validity, offset, table), _ = case
    a, b = np.empty(len(indices), np.int32), np.empty(len(indices), np.int32)
    assert native().dict_codes(indices, validity, offset, table, a) is a
    assert_same(a, twin.dict_codes(indices, validity, offset, table, b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_codes_reads_arrow_buffers(backend):
    """A sliced dictionary column with nulls: the bitmap and the indices are read from their offset."""
    import pyarrow as pa
    arr = pa.array(["b", None, "a", "b", None, "c", "a"]).dictionary_encode().slice(1)
    ind = arr.indices
    idx = np.frombuffer(ind.buffers()[1], np.int32, count=len(ind), offset=ind.offset * 4)
    validity = np.frombuffer(ind.buffers()[0], np.uint8)
    out = np.empty(len(ind), np.int32)
    kernels.backend(backend).dict_codes(idx, validity, ind.offset, i32([10, 20, 30]), out)
    want = [-1 if v is None else {"b": 10, "a": 20, "c": 30}[v] for v in arr.to_pylist()]
    assert out.tolist() == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_codes_refuses_a_bad_index(backend):
    with pytest.raises(IndexError):
        kernels.backend(backend).dict_codes(i32([0, 3]), np.zeros(0, np.uint8), 0, i32([1, 2]), np.empty(2, np.int32))


# every character str.strip removes, and some it does not (a zero-width space, a letter, CJK, an emoji)
_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]
_TEXT_CHARS = st.sampled_from(_SPACES + ["a", "Z", "0", "\u200b", "药", "\U0001F600", "\xe9", ";", "\x00"])


def _arrow_text_args(values: list, large: bool, start: int):
    import pyarrow as pa
    arr = pa.array(values, pa.large_string() if large else pa.string()).slice(start)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64 if large else np.int32, count=len(arr) + 1,
                            offset=arr.offset * (8 if large else 4))
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    validity = np.frombuffer(bufs[0], np.uint8) if bufs[0] is not None and arr.null_count else np.zeros(0, np.uint8)
    return (offsets, data, validity, arr.offset), arr.to_pylist()


@st.composite
def text_inputs(draw):
    values = draw(st.lists(st.one_of(st.none(), st.text(_TEXT_CHARS, max_size=5)), max_size=20))
    start = draw(st.integers(0, len(values)))
    return _arrow_text_args(values, draw(st.booleans()), start)


@SETTINGS
@given(case=text_inputs())
def test_blank_text_twin_follows_str_strip(case):
    args, values = case
    assert twin.blank_text(*args).tolist() == [v is None or not v.strip() for v in values]


@needs_cython
@SETTINGS
@given(case=text_inputs())
def test_blank_text_cython_equals_twin(case):
    args, _ = case
    assert_same(native().blank_text(*args), twin.blank_text(*args))


@pytest.mark.parametrize("backend", BACKENDS)
def test_blank_text_every_whitespace_character(backend):
    values = _SPACES + [s * 3 for s in _SPACES] + [" x ", "\u3000药\u3000", "\u200b", "", None, "\U0001F600 "]
    args, values = _arrow_text_args(values, False, 0)
    got = kernels.backend(backend).blank_text(*args)
    assert got.dtype == np.bool_
    assert got.tolist() == [v is None or not v.strip() for v in values]


_MICROS_DAY = 86_400_000_000


@SETTINGS
@given(micros=st.lists(st.integers(-(2 ** 62), 2 ** 62), max_size=30))
def test_floor_days_twin_follows_the_definition(micros):
    assert twin.floor_days(i64(micros)).tolist() == [m // _MICROS_DAY for m in micros]


@needs_cython
@SETTINGS
@given(micros=st.lists(st.one_of(st.integers(-(2 ** 62), 2 ** 62),
                                 st.integers(-3, 3).map(lambda d: d * _MICROS_DAY + st_offset(d))), max_size=30))
def test_floor_days_cython_equals_twin(micros):
    assert_same(native().floor_days(i64(micros)), twin.floor_days(i64(micros)))


def st_offset(d: int) -> int:
    return (-1) ** d  # a microsecond either side of midnight


@st.composite
def age_inputs(draw):
    n = draw(st.integers(0, 25))
    day = st.one_of(_recent_day, _day)
    birth = i32([draw(day) for _ in range(n)])
    service = i32([draw(day) for _ in range(n)])
    bk = np.array([draw(st.booleans()) for _ in range(n)], bool)
    sk = np.array([draw(st.booleans()) for _ in range(n)], bool)
    return birth, bk, service, sk


@needs_cython
@SETTINGS
@given(case=age_inputs())
def test_ages_cython_equals_twin(case):
    got, want = native().ages(*case), twin.ages(*case)
    assert_same(got[0], want[0])
    assert_same(got[1], want[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_ages_known_answers(backend):
    birth = i32([days(b) for b, _, _ in AGE_CASES] + [days(dt.date(2000, 1, 2)), 0, 0])
    service = i32([days(s) for _, s, _ in AGE_CASES] + [days(dt.date(2000, 1, 1)), 0, 0])
    bk = np.array([True] * (len(AGE_CASES) + 2) + [False])
    sk = np.array([True] * (len(AGE_CASES) + 1) + [False, True])
    ages, known = kernels.backend(backend).ages(birth, bk, service, sk)
    assert ages.dtype == np.float64 and known.dtype == np.bool_
    assert ages.tolist() == [float(w) for _, _, w in AGE_CASES] + [0.0, 0.0, 0.0]
    assert known.tolist() == [True] * len(AGE_CASES) + [False, False, False]  # born after the service: unknown


@pytest.mark.parametrize("backend", BACKENDS)
def test_ages_over_a_wide_range_of_dates(backend):
    """Birth and service dates thousands of years apart (no calendar table): the same full years."""
    birth = i32([days(dt.date(1, 3, 1)), days(dt.date(1990, 5, 5))])
    service = i32([days(dt.date(9999, 2, 28)), days(dt.date(2025, 5, 4))])
    ones = np.ones(2, bool)
    ages, known = kernels.backend(backend).ages(birth, ones, service, ones)
    assert ages.tolist() == [9997.0, 34.0] and known.tolist() == [True, True]


@st.composite
def lookup2_inputs(draw):
    na, width = draw(st.integers(0, 4)), draw(st.integers(1, 5))
    m = (na + 1) * width
    values = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=m, max_size=m)), np.float64)
    known = np.array(draw(st.lists(st.booleans(), min_size=m, max_size=m)), bool)
    dims = i32(draw(st.lists(st.integers(-1, 4), min_size=m, max_size=m)))
    n = draw(st.integers(0, 20))
    a = i32([draw(st.integers(-1, na - 1)) for _ in range(n)])
    b = i32([draw(st.integers(-1, width - 2)) for _ in range(n)])
    return a, b, width, values, known, dims


@SETTINGS
@given(case=lookup2_inputs())
def test_lookup2_twin_follows_the_definition(case):
    a, b, width, values, known, dims = case
    j = (a.astype(np.int64) + 1) * width + (b + 1)
    out, ok, dim = twin.lookup2(*case)
    assert_same(out, values[j])
    assert_same(ok, known[j])
    assert_same(dim, dims[j])


@needs_cython
@SETTINGS
@given(case=lookup2_inputs())
def test_lookup2_cython_equals_twin(case):
    for got, want in zip(native().lookup2(*case), twin.lookup2(*case)):
        assert_same(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lookup2_refuses_codes_outside_the_table(backend):
    k = kernels.backend(backend)
    table = (np.zeros(4), np.zeros(4, bool), np.zeros(4, np.int32))
    with pytest.raises(IndexError):
        k.lookup2(i32([0]), i32([1]), 2, *table)  # b + 1 == width
    with pytest.raises(IndexError):
        k.lookup2(i32([1]), i32([0]), 2, *table)  # a past the table


@st.composite
def ratio_inputs(draw):
    n = draw(st.integers(0, 20))
    num = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)), np.float64)
    den = np.array(draw(st.lists(st.sampled_from([0.0, -1.0, 0.5, 3.0, 7.0, 1e-300]), min_size=n, max_size=n)))
    nk = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    dk = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    return num, nk, den, dk


@SETTINGS
@given(case=ratio_inputs())
def test_ratio_twin_follows_the_definition(case):
    num, nk, den, dk = case
    ok = nk & dk & (den > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    val, known = twin.ratio(*case)
    assert_same(val, want)
    assert_same(known, ok)


@needs_cython
@SETTINGS
@given(case=ratio_inputs())
def test_ratio_cython_equals_twin(case):
    for got, want in zip(native().ratio(*case), twin.ratio(*case)):
        assert_same(got, want)


@st.composite
def expand_inputs(draw):
    n_codes = draw(st.integers(0, 6))
    starts, items, groups = draw(csr(n_codes, 9, max_len=3, sorted_unique=False))
    n = draw(st.integers(0, 20))
    codes = i32([draw(st.integers(-1, n_codes - 1)) for _ in range(n)])
    good = np.array([draw(st.booleans()) for _ in range(n)], bool)
    expected = [(i, r) for i, (c, g) in enumerate(zip(codes.tolist(), good.tolist())) if g and c >= 0
                for r in groups[c]]
    return (codes, good, starts, items.astype(np.int64)), expected


@SETTINGS
@given(case=expand_inputs())
def test_expand_pairs_twin_follows_the_definition(case):
    args, expected = case
    lines, rows = twin.expand_pairs(*args)
    assert lines.dtype == np.int64 and rows.dtype == np.int64
    assert list(zip(lines.tolist(), rows.tolist())) == expected


@needs_cython
@SETTINGS
@given(case=expand_inputs())
def test_expand_pairs_cython_equals_twin(case):
    args, _ = case
    for got, want in zip(native().expand_pairs(*args), twin.expand_pairs(*args)):
        assert_same(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expand_pairs_refuses_a_code_outside_the_index(backend):
    with pytest.raises(IndexError):
        kernels.backend(backend).expand_pairs(i32([0, 2]), np.ones(2, bool), i64([0, 1, 1]), i64([4]))
