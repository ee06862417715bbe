"""Claims from a database, findings into one (connectors/sql.py), on SQLite files made here."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Column, Date, DateTime, Float, Integer, MetaData, Table, Text, create_engine, insert, text

from claimaudit.connectors.claims import ClaimsError, read_table
from claimaudit.connectors.sinks import SinkError
from claimaudit.connectors.sql import is_database_url, read_sql, shown_url, write_sql
from claimaudit.dsl.schema import CLAIM_FIELDS

EXAMPLES = Path(__file__).resolve().parents[1] / "rulesets" / "demo" / "examples"


def _typed_db(path: Path, name: str = "claims") -> tuple[str, pa.Table]:
    """The demo claims in a table with SQL types (dates, date-times, numbers, text; a list of diagnoses as
    text with ';'), as a settlement database holds them; the URL and the Parquet table they came from."""
    source = pq.read_table(EXAMPLES / "claims.parquet")
    kinds = {"date": Date, "datetime": DateTime, "number": Float}
    columns = [Column(n, kinds.get(CLAIM_FIELDS[n].type, Text)() if n in CLAIM_FIELDS else Text())
               for n in source.column_names]
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    table = Table(name, MetaData(), *columns)
    rows = [{k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in source.to_pylist()]
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), rows)
    engine.dispose()
    return url, source


def _sqlite(path: Path, *statements: str) -> str:
    """A SQLite file made by plain SQL statements (SQLite keeps each value's own type); its URL."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()
    return url


def _counting_reads(monkeypatch) -> list:
    """Each read of the database by connectors/sql, recorded."""
    from claimaudit.connectors import sql
    reads, real = [], sql._fetch
    monkeypatch.setattr(sql, "_fetch", lambda *a: reads.append(a) or real(*a))
    return reads


def test_a_database_url_is_told_from_a_file():
    assert is_database_url("sqlite:///claims.db") and is_database_url("postgresql+psycopg://u:p@host/db")
    assert not is_database_url("claims.parquet") and not is_database_url("/data/claims.csv")
    assert not is_database_url("C:\\data\\claims.csv")


def test_the_password_is_never_shown():
    assert "s3cret" not in shown_url("postgresql://auditor:s3cret@db.example/claims")
    assert "auditor" in shown_url("postgresql://auditor:s3cret@db.example/claims")
    with pytest.raises(ClaimsError) as e:
        read_sql("nosuchdialect://auditor:s3cret@host/db", table="claims")
    assert "s3cret" not in str(e.value) and "not a database URL" in str(e.value)


def test_a_typed_table_reads_as_typed_columns(tmp_path):
    url, source = _typed_db(tmp_path / "claims.db")
    got = read_sql(url, table="claims")
    assert got.num_rows == source.num_rows and got.column_names == source.column_names
    assert got.column("fee_ocur_time").type == pa.timestamp("us")
    assert got.column("brdy").type == pa.date32()
    assert got.column("cnt").type == pa.float64()
    assert got.column("med_list_codg").type == pa.string()
    assert got.column("fee_ocur_time").cast(pa.timestamp("ms")).to_pylist() == source.column("fee_ocur_time").to_pylist()
    assert got.column("feedetl_sn").to_pylist() == source.column("feedetl_sn").to_pylist()


def test_a_query_reads_what_it_selects_in_its_order(tmp_path):
    url, source = _typed_db(tmp_path / "claims.db")
    got = read_sql(url, query="SELECT feedetl_sn, cnt FROM claims ORDER BY feedetl_sn DESC")
    assert got.column_names == ["feedetl_sn", "cnt"]
    assert got.column("feedetl_sn").to_pylist() == sorted(source.column("feedetl_sn").to_pylist(), reverse=True)


def test_small_fetches_give_the_same_table(tmp_path):
    url, _ = _typed_db(tmp_path / "claims.db")
    assert read_sql(url, table="claims", batch_rows=5).equals(read_sql(url, table="claims"))


def test_ids_held_as_numbers_become_text_and_mixed_columns_text(tmp_path):
    url = _sqlite(tmp_path / 'odd.db',  # SQLite keeps each value's own type: a column may mix them
                  "CREATE TABLE t (feedetl_sn INTEGER, cnt, vali_flag, note)",
                  "INSERT INTO t VALUES (1001, 2, 1, 'a'), (1002, 'two', 0, NULL), (1003, 2.5, NULL, NULL)")
    got = read_sql(url, table="t")
    assert got.column("feedetl_sn").to_pylist() == ["1001", "1002", "1003"]  # a text field of the schema
    assert got.column("cnt").to_pylist() == ["2", "two", "2.5"]  # mixed: text, typed later (and quarantined)
    assert got.column("vali_flag").to_pylist() == ["1", "0", None]
    assert got.column("note").to_pylist() == ["a", None, None]


@pytest.mark.parametrize("kwargs, says", [
    ({"table": "nosuch"}, "no table 'nosuch'"),
    ({}, "--table NAME or --query"),
    ({"table": "claims", "query": "SELECT 1"}, "--table NAME or --query"),
    ({"query": "DELETE FROM claims"}, "one SELECT"),
    ({"query": "SELECT nosuch_column FROM claims"}, "cannot read the claims"),
])
def test_reading_errors_say_what_and_where(tmp_path, kwargs, says):
    url, _ = _typed_db(tmp_path / "claims.db")
    with pytest.raises(ClaimsError) as e:
        read_sql(url, **kwargs)
    message = str(e.value)
    assert says in message and "\n" not in message
    if "query" in kwargs or "table" in kwargs:
        assert "sqlite:///" in message or "--query" in message


def test_a_missing_database_file_is_an_error_not_a_new_file(tmp_path):
    path = tmp_path / "nosuch.db"
    with pytest.raises(ClaimsError) as e:
        read_sql(f"sqlite:///{path}", table="claims")
    assert "no such database file" in str(e.value) and not path.exists()


def test_findings_round_trip_through_a_table(tmp_path):
    from claimaudit.engine.findings import FINDING_SCHEMA
    findings = pa.table({n: pa.array([None, None], FINDING_SCHEMA.field(n).type) for n in FINDING_SCHEMA.names},
                        schema=FINDING_SCHEMA)
    findings = findings.set_column(0, "finding_id", pa.array(["f1", "f2"])) \
        .set_column(FINDING_SCHEMA.get_field_index("amount"), "amount", pa.array([12.5, None])) \
        .set_column(FINDING_SCHEMA.get_field_index("message"), "message", pa.array(["超量：日剂量 3g", None])) \
        .set_column(FINDING_SCHEMA.get_field_index("shadow"), "shadow", pa.array([False, True]))
    url = f"sqlite:///{tmp_path / 'out.db'}"
    assert write_sql(findings, url, "findings") == 2
    back = read_sql(url, query="SELECT finding_id, amount, message, shadow FROM findings ORDER BY finding_id")
    assert back.column("finding_id").to_pylist() == ["f1", "f2"]
    assert back.column("amount").to_pylist() == [12.5, None]
    assert back.column("message").to_pylist() == ["超量：日剂量 3g", None]
    assert back.column("shadow").to_pylist() == [0, 1]
    write_sql(findings, url, "findings", replace=False)  # appended
    assert read_sql(url, query="SELECT count(*) AS n FROM findings").column("n").to_pylist() == [4]
    write_sql(findings.slice(0, 1), url, "findings")  # replaced
    assert read_sql(url, query="SELECT count(*) AS n FROM findings").column("n").to_pylist() == [1]


def test_appending_to_a_table_of_other_columns_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'out.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        Table("findings", MetaData(), Column("x", Integer)).create(conn)
    engine.dispose()
    with pytest.raises(SinkError) as e:
        write_sql(pa.table({"finding_id": ["f1"]}), url, "findings", replace=False)
    assert "no column 'finding_id'" in str(e.value)


def test_a_database_table_reads_as_the_file_does(tmp_path):
    """The same lines from the database (typed by SQL) and from the CSV export (text): what the audit reads of
    the values agrees (the engine types both; see test_cli_e2e for the findings)."""
    url, _ = _typed_db(tmp_path / "claims.db")
    from_db = read_sql(url, table="claims")
    from_csv = read_table(EXAMPLES / "claims.csv")
    assert from_db.num_rows == from_csv.num_rows
    assert from_db.column("feedetl_sn").to_pylist() == from_csv.column("feedetl_sn").to_pylist()
    assert from_db.column("diag_codes").to_pylist() == from_csv.column("diag_codes").to_pylist()
    assert [dt.date.fromisoformat(d) if d else None for d in from_csv.column("brdy").to_pylist()] == \
        from_db.column("brdy").to_pylist()


# ---- the audit command with a database on either side ------------------------------------------------------

from click.testing import CliRunner  # noqa: E402

from claimaudit.engine.cli import main  # noqa: E402

PACK = Path(__file__).resolve().parents[1] / "rulesets" / "demo"


def _audit(*args):
    return CliRunner().invoke(main, ["audit", "--rules", str(PACK), *[str(a) for a in args]])


def _csv_db(path: Path) -> str:
    """The CSV export's cells, all text, in a table made by plain SQL (as a bulk load leaves them)."""
    source = read_table(EXAMPLES / "claims.csv")
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    names = source.column_names
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE 结算明细 ({', '.join(f'{n} TEXT' for n in names)})"))
        conn.execute(text(f"INSERT INTO 结算明细 VALUES ({', '.join(f':{n}' for n in names)})"), source.to_pylist())
    engine.dispose()
    return url


@pytest.mark.parametrize("executor", ["batch", "reference"])
def test_an_audit_of_a_database_table_finds_what_the_file_audit_finds(tmp_path, executor):
    url, _ = _typed_db(tmp_path / "claims.db")
    r1 = _audit(EXAMPLES / "claims.parquet", "--out", tmp_path / "file.parquet", "--executor", executor)
    r2 = _audit(url, "--table", "claims", "--out", tmp_path / "db.parquet", "--executor", executor)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    from_file, from_db = pq.read_table(tmp_path / "file.parquet"), pq.read_table(tmp_path / "db.parquet")
    assert from_file.num_rows > 0 and from_db.equals(from_file)


def test_an_audit_of_a_query_over_text_cells_finds_what_the_csv_audit_finds(tmp_path):
    url = _csv_db(tmp_path / "claims.db")
    r1 = _audit(EXAMPLES / "claims.csv", "--out", tmp_path / "file.parquet")
    r2 = _audit(url, "--query", "SELECT * FROM 结算明细", "--out", tmp_path / "db.parquet")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert pq.read_table(tmp_path / "db.parquet").equals(pq.read_table(tmp_path / "file.parquet"))
    assert (tmp_path / "db.quarantine.parquet").exists() == (tmp_path / "file.quarantine.parquet").exists()


def test_findings_and_quarantine_go_into_database_tables(tmp_path):
    url = _csv_db(tmp_path / "claims.db")
    out = f"sqlite:///{tmp_path / 'findings.db'}"
    ref = _audit(EXAMPLES / "claims.csv", "--out", tmp_path / "file.parquet")
    got = _audit(url, "--query", "SELECT * FROM 结算明细", "--out", out, "--out-table", "审核结果")
    assert ref.exit_code == 0 and got.exit_code == 0, ref.output + got.output
    assert "table 审核结果" in got.output and "sqlite:///" in got.output
    want = pq.read_table(tmp_path / "file.parquet")
    back = read_sql(out, query="SELECT * FROM 审核结果")
    assert back.num_rows == want.num_rows > 0
    assert back.column("finding_id").to_pylist() == want.column("finding_id").to_pylist()
    assert back.column("message").to_pylist() == want.column("message").to_pylist()
    assert back.column("amount").to_pylist() == want.column("amount").to_pylist()
    quarantine = read_sql(out, query="SELECT * FROM 审核结果_quarantine")
    assert quarantine.column_names == ["row", "field", "reason", "feedetl_sn"]
    again = _audit(url, "--query", "SELECT * FROM 结算明细", "--out", out, "--out-table", "审核结果", "--append")
    assert again.exit_code == 0, again.output
    assert read_sql(out, query="SELECT count(*) AS n FROM 审核结果").column("n").to_pylist() == [2 * want.num_rows]


@pytest.mark.parametrize("args, says", [
    (["{file}", "--table", "claims", "--out", "{tmp}/f.parquet"], "--table reads claims from a database"),
    (["{url}", "--out", "{tmp}/f.parquet"], "--table NAME or --query"),
    (["{url}", "--table", "claims"], "--out"),
    (["{url}", "--table", "claims", "--out", "{tmp}/f.parquet", "--temp-dir", "{tmp}/no/such/dir"], "--temp-dir"),
    (["{file}", "--out", "{tmp}/f.parquet", "--append"], "--append adds to database tables"),
    (["{url}", "--table", "nosuch", "--out", "{tmp}/f.parquet"], "no table 'nosuch'"),
    (["sqlite:///{tmp}/nosuch.db", "--table", "claims", "--out", "{tmp}/f.parquet"], "no such database file"),
])
def test_database_mistakes_are_one_line(tmp_path, args, says):
    url, _ = _typed_db(tmp_path / "claims.db")
    fill = {"file": EXAMPLES / "claims.parquet", "url": url, "tmp": tmp_path}
    result = _audit(*[a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.output


def test_a_database_audited_in_partitions_and_workers_finds_what_one_pass_finds(tmp_path):
    """The database is read once into a snapshot file, then audited as a file is: in partitions, by workers."""
    url = _csv_db(tmp_path / "claims.db")
    query = ["--query", "SELECT * FROM 结算明细 ORDER BY rowid"]
    one = _audit(url, *query, "--out", tmp_path / "one.parquet")
    parts = _audit(url, *query, "--out", tmp_path / "parts.parquet", "--partitions", "3", "--jobs", "2",
                   "--temp-dir", tmp_path)
    assert one.exit_code == 0 and parts.exit_code == 0, one.output + parts.output
    assert "3 partitions" in parts.output and "2 worker processes" in parts.output
    assert pq.read_table(tmp_path / "parts.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("claimaudit-")] == []  # snapshots removed


def test_spooling_a_column_whose_type_changes_reads_it_as_text(tmp_path):
    from claimaudit.connectors.sql import spool_sql
    url = _sqlite(tmp_path / 'odd.db',
                  "CREATE TABLE t (feedetl_sn TEXT, cnt)",
                  "INSERT INTO t VALUES ('a', NULL), ('b', NULL), ('c', 3), ('d', 'x')")
    n = spool_sql(url, tmp_path / "t.parquet", table="t", batch_rows=2)  # the first fetch: cnt all null
    got = pq.read_table(tmp_path / "t.parquet")
    assert n == 4 and got.column("cnt").to_pylist() == [None, None, "3", "x"]
    assert got.equals(read_sql(url, table="t").cast(got.schema))


def test_codes_held_as_numbers_are_read_as_text_with_a_note(tmp_path):
    """hosp_lv 02 stored as the number 2 reads "2": it no longer matches the knowledge's "02", and the console
    says so (ids held as numbers are harmless and not named)."""
    source = read_table(EXAMPLES / "claims.csv")
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    engine = create_engine(url)
    names = source.column_names
    numeric = {"hosp_lv", "feedetl_sn"}
    rows = [{k: (int(v) if k in numeric and v and v.isdigit() else v) for k, v in r.items()} for r in source.to_pylist()]
    assert any(isinstance(r["hosp_lv"], int) for r in rows)  # the example claims carry levels like 02
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE c ({', '.join(n + (' INTEGER' if n in numeric else ' TEXT') for n in names)})"))
        conn.execute(text(f"INSERT INTO c VALUES ({', '.join(f':{n}' for n in names)})"), rows)
    engine.dispose()
    result = _audit(url, "--table", "c", "--out", tmp_path / "f.parquet")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: the database holds")]
    assert len(notes) == 1 and "hosp_lv" in notes[0] and "feedetl_sn" not in notes[0]
    got = read_sql(url, table="c")
    assert all(v is None or not v.startswith("0") for v in got.column("hosp_lv").to_pylist())


def test_a_column_empty_in_the_first_fetch_is_read_once_as_text(tmp_path, monkeypatch):
    """Refund links and discharge times are empty for most lines: the first fetch's empty column is text, and
    the query is not read again for it (a 1M-line table was read once per such column)."""
    from claimaudit.connectors import sql
    url = _sqlite(tmp_path / 'sparse.db',
                  "CREATE TABLE t (feedetl_sn TEXT, init_feedetl_sn TEXT, cnt REAL, endtime TEXT)",
                  "INSERT INTO t VALUES ('a', NULL, NULL, NULL), ('b', NULL, NULL, NULL), "
                  "('c', 'a', 2.5, '2026-03-10 10:00:00'), ('d', NULL, 1.0, NULL)")
    reads = _counting_reads(monkeypatch)
    assert sql.spool_sql(url, tmp_path / "t.parquet", table="t", batch_rows=2) == 4
    got = pq.read_table(tmp_path / "t.parquet")
    assert len(reads) == 1
    assert got.column("init_feedetl_sn").to_pylist() == [None, None, "a", None]
    assert got.column("cnt").to_pylist() == [None, None, "2.5", "1"]
    assert got.column("endtime").to_pylist() == [None, None, "2026-03-10 10:00:00", None]


def test_many_columns_changing_type_cost_at_most_four_reads(tmp_path, monkeypatch):
    from claimaudit.connectors import sql
    url = _sqlite(tmp_path / 'mixed.db',  # five columns typed in the first fetch, text in the second
                  "CREATE TABLE t (a, b, c, d, e)",
                  "INSERT INTO t VALUES (1, 2, 3, 4, 5), (1, 2, 3, 4, 5), ('x', 'x', 'x', 'x', 'x')")
    reads = _counting_reads(monkeypatch)
    assert sql.spool_sql(url, tmp_path / "t.parquet", table="t", batch_rows=2) == 3
    assert len(reads) <= 4
    got = pq.read_table(tmp_path / "t.parquet")
    assert [got.column(n).to_pylist() for n in "abcde"] == [[str(i), str(i), "x"] for i in range(1, 6)]  # as text


@pytest.mark.parametrize("how", [{"table": "claims"}, {"query": "SELECT * FROM claims"}])
def test_rows_are_fetched_in_chunks_of_the_size_asked(tmp_path, monkeypatch, how):
    """A text query does not carry SQLAlchemy's yield_per: without the size, SQLite's cursor fetched one row at a
    time after the first chunk (a 1M-line query ran for many minutes)."""
    from claimaudit.connectors import sql
    url, source = _typed_db(tmp_path / "claims.db")
    sizes = []
    real = sql._chunk
    monkeypatch.setattr(sql, "_chunk", lambda rows, width: sizes.append(len(rows)) or real(rows, width))
    sql.spool_sql(url, tmp_path / "t.parquet", batch_rows=10, **how)
    n = source.num_rows  # (a column changing type may stop a pass and read the query again)
    assert all(s in (10, n % 10) for s in sizes) and sizes[-1] == n % 10 and len(sizes) <= 4 * (n // 10 + 1)


def test_a_quantity_held_as_whole_numbers_then_fractions_is_read_once_as_numbers(tmp_path, monkeypatch):
    from claimaudit.connectors import sql
    url = _sqlite(tmp_path / 'q.db',  # NUMERIC affinity: 2 is stored as an integer, 2.5 as a real
                  "CREATE TABLE t (feedetl_sn TEXT, cnt NUMERIC)",
                  "INSERT INTO t VALUES ('a', 2), ('b', 3), ('c', 2.5)")
    reads = _counting_reads(monkeypatch)
    sql.spool_sql(url, tmp_path / "t.parquet", table="t", batch_rows=2)
    got = pq.read_table(tmp_path / "t.parquet")
    assert len(reads) == 1 and got.column("cnt").type == pa.float64()
    assert got.column("cnt").to_pylist() == [2.0, 3.0, 2.5]
