"""Claims from a database and findings into one, through SQLAlchemy (SQLite is built in; any dialect whose
driver is installed works: ``postgresql+psycopg://…``, ``mysql+pymysql://…``, ``oracle+oracledb://…``).

Auditors' claim lines live in the settlement database, not in files. ``read_sql`` streams a table or a query
in chunks into an Arrow table with the columns a Parquet or CSV input would have, so the audit that follows
is the file audit's: the same typing, quarantine and findings. Row numbers in the quarantine are positions
in the result (give an ``ORDER BY`` in ``--query`` for a stable numbering).

Values keep their database types where the engine reads them directly (numbers, dates, date-times, text);
DECIMAL becomes float64, a text field of the national schema held as a number (ids, codes) becomes text,
and a column whose values disagree in type (SQLite allows that) is read as text, to be typed and, where a
value cannot be read, quarantined with its row and field as a CSV cell would be.

Error messages name the database with its password hidden and never show row content (patient data).
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa

from claimaudit.dsl.schema import CLAIM_FIELDS

from .claims import ClaimsError
from .sinks import SinkError

BATCH_ROWS = 100_000  # rows fetched and turned into Arrow at a time
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_database_url(text: str) -> bool:
    """Whether a claims or output argument names a database (``dialect[+driver]://…``) rather than a file."""
    return bool(_URL_RE.match(str(text)))


def shown_url(url: str) -> str:
    """The URL as messages show it: the password hidden."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unreadable URL is shown without its credentials part
        return re.sub(r"//[^@/]*@", "//***@", str(url))


def read_sql(url: str, table: str | None = None, query: str | None = None, batch_rows: int = BATCH_ROWS,
             seen: dict | None = None) -> pa.Table:
    """The claim lines of ``table`` (every column) or of ``query`` (a SELECT) as an Arrow table; ``seen`` gets
    each column's type as the database gave it (see ``numeric_codes``)."""
    names, chunks = None, []
    for names, chunk in _fetch(url, table, query, batch_rows):
        chunks.append(chunk)
    return pa.table({name: _column(name, [c[k] for c in chunks], seen) for k, name in enumerate(names)})


def spool_sql(url: str, path, table: str | None = None, query: str | None = None,
              batch_rows: int = BATCH_ROWS, seen: dict | None = None) -> int:
    """The claim lines of ``table`` or ``query`` written to the Parquet file ``path`` chunk by chunk (memory: one
    chunk), typed as ``read_sql`` types them; the number of lines. The database is read once, so an audit of
    the file (partitioned, in workers) sees one snapshot. The file's columns have one type, set by the first
    chunk: a column empty there is text (later values as their text, which the audit types as it types a CSV
    cell); a typed column whose values change type later makes the query read again with it as text."""
    as_text: set = set()
    while True:
        try:
            return _spool(url, path, table, query, batch_rows, as_text, seen)
        except _TypeChanged as e:
            # a third such column: every column as text, so that the query is read at most four times
            as_text.add(e.column if len(as_text) < 2 else _EVERY_COLUMN)


_EVERY_COLUMN = object()  # in spool_sql's set of text columns: all of them


class _TypeChanged(Exception):
    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def _spool(url: str, path, table, query, batch_rows: int, as_text: set, seen: dict | None) -> int:
    import pyarrow.parquet as pq
    writer, schema, rows = None, None, 0
    try:
        for names, chunk in _fetch(url, table, query, batch_rows):
            arrays = [_as_text(v) if n in as_text or _EVERY_COLUMN in as_text else _column(n, [v], seen).combine_chunks()
                      for n, v in zip(names, chunk)]
            if schema is None:
                schema = pa.schema([(n, pa.string() if a.type == pa.null() else a.type) for n, a in zip(names, arrays)])
                writer = pq.ParquetWriter(str(path), schema)
            for k, (n, a, f) in enumerate(zip(names, arrays, schema)):
                if a.type == f.type or a.type == pa.null():
                    continue
                if f.type != pa.string():  # typed by the first fetch, other values now: read it again as text
                    raise _TypeChanged(n)
                arrays[k] = _as_text(chunk[k])  # empty in the first fetch (text), values now: their text
            batch = pa.record_batch([a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, schema)],
                                    schema=schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no chunk at all: an empty result still has its columns
            pq.write_table(pa.table({n: pa.array([], pa.string()) for n in (names or [])}), str(path))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _fetch(url: str, table: str | None, query: str | None, batch_rows: int):
    """(column names, the chunk's columns as tuples of Python values) per fetch of ``table`` or ``query``."""
    if (table is None) == (query is None):
        raise ClaimsError(f"{shown_url(url)}: name the claims with --table NAME or --query 'SELECT …' (one of them)")
    where = shown_url(url)
    _sqlite_file_exists(url, where)
    engine = _engine(url, where, ClaimsError)
    try:
        with engine.connect() as conn:
            stmt = _select_table(conn, table, where) if table is not None else _query(query)
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
            names = [str(k).strip() for k in result.keys()]
            _check_names(names, where)
            empty = True
            for rows in result.partitions(batch_rows):  # the size given: a text query may not carry yield_per
                empty = False
                yield names, _chunk(rows, len(names))
            if empty:
                yield names, _chunk([], len(names))
    except (ClaimsError, _TypeChanged):
        raise
    except GeneratorExit:
        raise
    except Exception as e:  # noqa: BLE001 - the driver's own error, first line only (no row content)
        raise ClaimsError(f"{where}: cannot read the claims: {_first_line(e)}") from None
    finally:
        engine.dispose()


def write_sql(table: pa.Table, url: str, name: str, replace: bool = True) -> int:
    """``table`` into database table ``name`` (dropped and made again when ``replace``, else appended to), in one
    transaction; the number of rows written."""
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, Table, Text, inspect, insert
    where = shown_url(url)
    engine = _engine(url, where, SinkError)
    kinds = {"int64": Integer, "double": Float, "bool": Boolean}
    columns = [Column(f.name, kinds.get(str(f.type), Text)()) for f in table.schema]
    target = Table(name, MetaData(), *columns)
    try:
        with engine.begin() as conn:
            exists = inspect(conn).has_table(name)
            if exists and replace:
                target.drop(conn)
            if not exists or replace:
                target.create(conn)
            else:
                _check_appendable(inspect(conn).get_columns(name), table.schema.names, name, where)
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                rows = batch.to_pylist()
                if rows:
                    conn.execute(insert(target), rows)
    except SinkError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SinkError(f"{where}: cannot write table {name!r}: {_first_line(e)}") from None
    finally:
        engine.dispose()
    return table.num_rows


def _engine(url: str, where: str, error):
    try:
        from sqlalchemy import create_engine
        return create_engine(url)
    except Exception as e:  # noqa: BLE001 - unknown dialect, missing driver, malformed URL
        raise error(f"{where}: not a database URL this installation can open: {_first_line(e)}") from None


def _sqlite_file_exists(url: str, where: str) -> None:
    """Reading from a SQLite file that is not there: an error (SQLite would make an empty one)."""
    try:
        from sqlalchemy.engine import make_url
        u = make_url(url)
    except Exception:  # noqa: BLE001 - _engine says what is wrong with it
        return
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:") and not Path(u.database).exists():
        raise ClaimsError(f"{where}: no such database file")


def _select_table(conn, name: str, where: str):
    from sqlalchemy import MetaData, Table, inspect, select
    schema, _, bare = name.rpartition(".")
    schema = schema or None
    if not inspect(conn).has_table(bare, schema=schema):
        raise ClaimsError(f"{where}: no table {name!r}")
    return select(Table(bare, MetaData(), schema=schema, autoload_with=conn))


def _query(query: str):
    from sqlalchemy import text
    if not re.match(r"^\s*(select|with)\b", query, re.IGNORECASE):
        raise ClaimsError("--query takes one SELECT (or WITH … SELECT) statement")
    return text(query)


def _check_names(names: list, where: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ClaimsError(f"{where}: the claims have two columns named {n!r}")
        seen.add(n)


def _check_appendable(existing: list, names: list, table: str, where: str) -> None:
    have = {c["name"] for c in existing}
    missing = [n for n in names if n not in have]
    if missing:
        raise SinkError(f"{where}: table {table!r} has no column {missing[0]!r}: write to a new table, or replace it")


def _chunk(rows: list, width: int) -> list:
    """Rows of one fetch as columns (tuples of Python values)."""
    return list(zip(*rows)) if rows else [() for _ in range(width)]


# ids: a number is as good as its text; for codes a number has lost its leading zeros
_IDS = frozenset(("feedetl_sn", "init_feedetl_sn", "mdtrt_id", "psn_no", "setl_id", "rxno", "drord_no"))


def numeric_codes(schema: pa.Schema) -> list:
    """National code fields a database held as numbers (read as text: ``hosp_lv`` 02 stored as 2 reads "2", and
    no longer matches a knowledge table's "02"); the caller warns about them."""
    return [f.name for f in schema if f.name in CLAIM_FIELDS and CLAIM_FIELDS[f.name].type == "text"
            and f.name not in _IDS and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                         or pa.types.is_decimal(f.type))]


def _column(name: str, parts: list, seen: dict | None = None) -> pa.ChunkedArray:
    """One column from its fetched parts: one Arrow type for all of them (see the module docstring); ``seen``
    gets the column's type as the database gave it."""
    arrays = [_array(values) for values in parts]
    types = {a.type for a in arrays if a.type != pa.null()}
    if seen is not None and len(types) == 1:
        seen.setdefault(name, next(iter(types)))
    text_field = name in CLAIM_FIELDS and CLAIM_FIELDS[name].type == "text"
    if len(types) > 1 or (text_field and types and types != {pa.string()}):
        arrays = [_as_text(values) for values in parts]
        types = {pa.string()}
    kind = types.pop() if types else (pa.string() if text_field or name not in CLAIM_FIELDS else pa.null())
    if kind == pa.null():
        kind = pa.string()
    if pa.types.is_integer(kind) and name in CLAIM_FIELDS and CLAIM_FIELDS[name].type == "number":
        kind = pa.float64()  # as the audit reads numbers; and 2 then 2.5 later in a column keeps one type
    return pa.chunked_array([a if a.type == kind else a.cast(kind) for a in arrays], kind)


def _array(values) -> pa.Array:
    """Python values of one type as an Arrow array (read by Arrow, in C); values of several types, or of a type
    the engine does not read (bytes, time zones, intervals), as text. DECIMAL becomes float64."""
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return _as_text(values)
    t = arr.type
    if pa.types.is_decimal(t):
        return arr.cast(pa.float64())
    if pa.types.is_timestamp(t) and t.tz is None:
        return arr.cast(pa.timestamp("us"))
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_date32(t) or t == pa.null()):
        return arr
    return _as_text(values)


def _as_text(values: list) -> pa.Array:
    return pa.array([None if v is None else _text(v) for v in values], pa.string())


def _text(v) -> str:
    """A database value as the text a CSV export would hold."""
    if isinstance(v, bool):  # flags: the national schema's "1" / "0"
        return "1" if v else "0"
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _first_line(e: Exception) -> str:
    """An exception's message, first line, without SQL parameters (which can hold patient data)."""
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
