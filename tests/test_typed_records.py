"""typed_records (a column at a time) types good rows exactly as coerce_row (a value at a time) does, for
every column type a reader hands over: Parquet's typed columns, dictionaries, and CSV's text."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from claimaudit.connectors.claims import coerce_row, typed_records
from claimaudit.dsl.schema import CLAIM_FIELDS

FIELDS = tuple((n, CLAIM_FIELDS[n]) for n in ("feedetl_sn", "med_list_codg", "hilist_name", "cnt", "pric",
                                               "fee_ocur_time", "brdy", "diag_codes", "psn_no"))
BLANKS = ["", " ", "\u3000", "\t", "\x1f"]
texts = st.builds(lambda pad_l, core, pad_r: pad_l + core + pad_r, st.sampled_from(BLANKS),
                  st.sampled_from(["A01", "XA10BAE098A001010102233", "阿莫西林", "x y"]), st.sampled_from(BLANKS))


def _rows(draw_rows):
    return [{"feedetl_sn": f"L{i}", "med_list_codg": "XA10", **r} for i, r in enumerate(draw_rows)]


def _same_as_coerce_row(table):
    want = [coerce_row(raw, FIELDS)[0] for raw in table.to_pylist()]
    assert typed_records(table, FIELDS) == want


@settings(max_examples=80, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "hilist_name": st.one_of(st.none(), texts),
    "cnt": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
    "pric": st.one_of(st.none(), st.integers(-10**6, 10**6)),
    "fee_ocur_time": st.one_of(st.none(), st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2030, 1, 1))),
    "brdy": st.one_of(st.none(), st.dates(dt.date(1920, 1, 1), dt.date(2030, 1, 1))),
    "psn_no": st.one_of(st.none(), texts),
}), min_size=1, max_size=30))
def test_typed_columns(rows):
    table = pa.Table.from_pylist(_rows(rows), schema=pa.schema([
        ("feedetl_sn", pa.string()), ("med_list_codg", pa.string()), ("hilist_name", pa.string()),
        ("cnt", pa.float64()), ("pric", pa.int64()), ("fee_ocur_time", pa.timestamp("us")),
        ("brdy", pa.date32()), ("psn_no", pa.string())]))
    _same_as_coerce_row(table)
    encoded = table.set_column(2, "hilist_name", table.column("hilist_name").dictionary_encode())
    _same_as_coerce_row(encoded)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "cnt": st.one_of(st.none(), st.sampled_from(["1", " 2.5", "1,000", "3\u3000", ""])),
    "fee_ocur_time": st.one_of(st.none(), st.sampled_from(["2025-01-02 03:04:05", "2025/01/02", "20250102", " "])),
    "brdy": st.one_of(st.none(), st.sampled_from(["1980-05-06", "19800506", "1980/05/06 00:00:00"])),
    "diag_codes": st.one_of(st.none(), st.sampled_from(["A01.000;B02.100", "A01.000,", " ; "])),
    "psn_no": st.one_of(st.none(), texts),
}), min_size=1, max_size=30))
def test_text_columns_as_csv_gives_them(rows):
    table = pa.Table.from_pylist(_rows(rows), schema=pa.schema([(n, pa.string()) for n in (
        "feedetl_sn", "med_list_codg", "cnt", "fee_ocur_time", "brdy", "diag_codes", "psn_no")]))
    _same_as_coerce_row(table)


def test_absent_and_timezone_columns():
    when = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    table = pa.table({"feedetl_sn": ["L1", "L2"], "med_list_codg": ["X", "Y"],
                      "fee_ocur_time": pa.array([when, None], pa.timestamp("us", tz="UTC"))})
    got = typed_records(table, FIELDS)
    assert got[0]["fee_ocur_time"] == dt.datetime(2025, 3, 1, 8, 30) and got[0]["fee_ocur_time"].tzinfo is None
    assert got[1]["fee_ocur_time"] is None and got[0]["cnt"] is None and got[0]["hilist_name"] is None
    _same_as_coerce_row(table)
