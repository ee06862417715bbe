"""The ``claimaudit`` command: check, test, audit, screen.

User mistakes (bad rule file, bad claims file, bad request) end with a clear message and a
non-zero exit status, never a traceback. Console output names rows and fields, never patients.
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from claimaudit.dsl.ruleset import Ruleset, load_ruleset

from .findings import INSUFFICIENT, VIOLATION, findings_table, screen_response
from .loading import PlanError, load_plan, load_rules
from .partitioned import DEFAULT_PARTITION_LINES, EngineRecipe, WorkerLost
from .reference import ReferenceEngine
from .testing import run_examples

EXIT_OK, EXIT_FINDINGS_ERROR, EXIT_USAGE = 0, 1, 2


def _console(err=False) -> Console:
    # Off a terminal (pipes, CI logs) rich would assume 80 columns and cut Chinese rule names.
    con = Console(stderr=err, highlight=False)
    if not con.is_terminal:
        con = Console(stderr=err, highlight=False, width=160)
    return con


PROFILE_HELP = ("A local profile (TOML) beside the pack: settings, rule stages/severity/shadow mode, "
                "exemptions. Findings record it.")


def _load_plan_or_exit(path: str, profile: str | None = None):
    """A compiled bundle, or a ruleset compiled now (with the local profile applied); warnings printed."""
    return _or_exit(load_plan, path, profile)


def _load_or_exit(path: str, profile: str | None = None) -> Ruleset:
    return _or_exit(load_rules, path, profile)


def _or_exit(load, path: str, profile: str | None):
    try:
        return load(path, profile, warn=lambda text: click.echo(text, err=True))
    except PlanError as e:
        _exit_on(e)


def _exit_on(e):
    """A PlanError's text and exit status (1 for errors in the rules, as ``check`` gives; else 2)."""
    click.echo(str(e), err=True)
    sys.exit(EXIT_FINDINGS_ERROR if e.rule_errors else EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claimaudit")
def main():
    """claimaudit: medical-insurance claims audit rules (医保智能审核).

    Write rules as text plus knowledge tables, check and test them, then audit claim batches
    (事后) or screen one prescription (事前/事中).
    """


@main.command()
@click.argument("path", type=click.Path())
@click.option("--profile", "profile", type=click.Path(), help=PROFILE_HELP + " Checked against the pack.")
def check(path, profile):
    """Check the rule files under PATH: syntax, fields, tables, types, units, dates, placeholders.

    Prints every problem with its code, file:line:col and a caret; exits 1 when there are errors.
    """
    rs = load_ruleset(path, profile)
    if rs.diagnostics:
        click.echo(rs.render_diagnostics())
    n_err = len(rs.errors)
    n_warn = len(rs.diagnostics) - n_err
    tables = sum(len(t) for t in rs.tables.values())
    summary = (f"{len(rs.files)} file(s), {len(rs.rules)} rule(s), {len(rs.tables)} table(s) with {tables} "
               f"knowledge row(s): {n_err} error(s), {n_warn} warning(s)")
    click.echo(summary)
    sys.exit(EXIT_FINDINGS_ERROR if n_err else EXIT_OK)


@main.command()
@click.argument("path", type=click.Path())
@click.option("-v", "--verbose", is_flag=True, help="List every example, not only failures.")
def test(path, verbose):
    """Run the examples written next to each rule under PATH and report rule coverage."""
    rs = _load_or_exit(path)
    report = run_examples(rs)
    con = _console()
    for r in report.results:
        if not r.passed:
            con.print(f"[red]FAIL[/red] {r.location}: rule {r.rule.code} {r.rule.name} — example '{r.example.name}'",
                      markup=True)
            for p in r.problems:
                con.print(f"     {p}", markup=False)
        elif verbose:
            con.print(f"[green]ok[/green]   {r.location}: {r.rule.code} — {r.example.name}")
    if report.untested:
        con.print(f"[yellow]{len(report.untested)} rule(s) without examples:[/yellow]")
        for rule in report.untested:
            where = f"{rule.span.file}:{rule.span.line}" if rule.span else ""
            con.print(f"     {rule.code} {rule.name} ({where})", markup=False)
    passed = len(report.results) - len(report.failures)
    con.print(f"{passed} passed, {len(report.failures)} failed")
    con.print(f"rule coverage: {len(rs.rules) - len(report.untested)}/{len(rs.rules)} rules have examples "
              f"({report.coverage:.0%})")
    sys.exit(EXIT_FINDINGS_ERROR if report.failures else EXIT_OK)


@main.command()
@click.option("--rules", "rules_path", required=True, type=click.Path(),
              help="Rule file or directory, or a compiled bundle.")
@click.argument("claims", type=click.Path())
@click.option("--out", "out_path", type=click.Path(), help="Findings file (.parquet, .csv or .jsonl), or a database "
              "URL (the findings go to --out-table). Default: findings.parquet beside CLAIMS.")
@click.option("--quarantine", "quarantine_path", type=click.Path(),
              help="Where rows that cannot be read go, with row, field and reason. Default: beside --out. With a "
              "database --out, a table name (default: --out-table + '_quarantine').")
@click.option("--table", "sql_table", metavar="NAME",
              help="CLAIMS is a database URL (sqlite:///claims.db, postgresql+psycopg://…): read this table.")
@click.option("--query", "sql_query", metavar="SQL",
              help="CLAIMS is a database URL: read the lines this SELECT returns (its ORDER BY numbers the rows).")
@click.option("--out-table", "out_table", metavar="NAME", default="claimaudit_findings", show_default=True,
              help="The findings table when --out is a database URL (replaced, unless --append).")
@click.option("--append", "append", is_flag=True,
              help="With a database --out: add to the findings and quarantine tables instead of replacing them.")
@click.option("--stage", "stages", multiple=True, default=("事后",), show_default=True,
              help="Only rules for these stages (事前, 事中, 事后).")
@click.option("--executor", type=click.Choice(["batch", "reference"]), default="batch", show_default=True,
              help="batch: compiled families over Arrow columns; reference: the rule-by-rule oracle.")
@click.option("--profile", "profile", type=click.Path(), help=PROFILE_HELP)
@click.option("--partitions", "partitions", metavar="N",
              help="Audit in N partitions by patient (psn_no), one at a time (or --jobs at a time), for input "
              "larger than memory; 1 holds the whole input in memory. Default: from the input's line count and "
              "--partition-lines (at least --jobs). Findings and quarantine are the same either way.")
@click.option("--partition-lines", "partition_lines", metavar="LINES", default=str(DEFAULT_PARTITION_LINES),
              show_default=True, help="Lines per partition when --partitions is not given.")
@click.option("--temp-dir", "temp_dir", type=click.Path(),
              help="Where partition files are written (removed afterwards). Default: the system's temporary "
              "directory (TMPDIR).")
@click.option("--jobs", "jobs", metavar="N", default="1", show_default=True,
              help="Audit the partitions in N worker processes at once (at least N partitions unless --partitions "
              "says otherwise). Each worker holds one partition: peak memory is about N times one partition's "
              "(see --partition-lines). Findings and quarantine are the same as with 1.")
def audit(rules_path, claims, out_path, quarantine_path, sql_table, sql_query, out_table, append, stages, executor,
          profile, partitions, partition_lines, temp_dir, jobs):
    """Audit a batch of claim lines (Parquet, CSV or a database table, national field names) after settlement
    (事后)."""
    from claimaudit.connectors.claims import ClaimsError
    from claimaudit.connectors.partition import PartitionError
    from claimaudit.connectors.sinks import SinkError

    asked = _count_option("--partitions", partitions) if partitions is not None else None
    budget = _count_option("--partition-lines", partition_lines)
    jobs = _count_option("--jobs", jobs)
    source = _ClaimsInput(claims, sql_table, sql_query, out_path)
    if append and not (out_path and _is_url(out_path)):
        _fail("--append adds to database tables: give a database URL as --out (a file is always written whole)")
    plan = _load_plan_or_exit(rules_path, profile)
    rs = plan.ruleset
    wanted = _stages(stages)
    from .memory import advise_plain_pages
    advise_plain_pages()  # a batch process: see engine/memory.py
    started = time.perf_counter()
    try:
        if executor == "reference":
            if asked is not None and asked > 1:
                _fail("--partitions applies to --executor batch (the reference interpreter is the oracle, "
                      "for small inputs)")
            if jobs > 1:
                _fail("--jobs applies to --executor batch (the reference interpreter is the oracle, for small "
                      "inputs)")
            outcome = _audit_in_memory(ReferenceEngine(rs, stages=wanted), source, executor)
        else:
            from .batch import BatchEngine
            engine = BatchEngine(plan, stages=wanted)
            recipe = EngineRecipe(rules_path, profile, frozenset(wanted))  # workers build the same engine
            # a database: a snapshot in a Parquet file, then audited as a file is (partitions, workers)
            with source.spooled(temp_dir, engine.rules) as path:
                outcome = _audit_batch(engine, path, asked, budget, temp_dir, jobs, recipe)
    except (ClaimsError, PartitionError, WorkerLost) as e:
        _fail(str(e))
    except PlanError as e:  # a worker could not load the rules the parent loaded (changed meanwhile)
        _exit_on(e)
    elapsed = time.perf_counter() - started
    try:
        out, qpath = _write_outcome(outcome, claims, out_path, quarantine_path, out_table, append)
    except (SinkError, OSError) as e:
        _fail(str(e))
    _print_summary(rs, outcome.findings, outcome.n_lines, outcome.quarantined, elapsed, out, qpath)


class _ClaimsInput:
    """Where the claims come from: a file (CLAIMS a path), or a database (CLAIMS a URL, with --table or --query);
    what does not fit the one chosen is a one-line error."""

    def __init__(self, claims: str, table=None, query=None, out_path=None):
        from claimaudit.connectors.sql import is_database_url
        self.claims, self.table, self.query = claims, table, query
        self.database = is_database_url(claims)
        if not self.database:
            if table is not None or query is not None:
                _fail(f"{'--table' if table is not None else '--query'} reads claims from a database: give a database "
                      "URL as CLAIMS (e.g. sqlite:///claims.db)")
            return
        if (table is None) == (query is None):
            _fail("claims from a database: give --table NAME or --query 'SELECT …' (one of them)")
        if not out_path:
            _fail("claims from a database: say where the findings go with --out (a file or a database URL)")

    @contextmanager
    def spooled(self, temp_dir, rules):
        """The claims as a file: the file itself, or the database's lines in a Parquet file under ``temp_dir``
        (removed afterwards), read once, chunk by chunk: the batch audit then reads a snapshot as it reads a
        file, in partitions when it is large."""
        if not self.database:
            yield self.claims
            return
        import tempfile

        import pyarrow as pa
        import pyarrow.parquet as pq

        from claimaudit.connectors.claims import ClaimsError, check_columns
        from claimaudit.connectors.sql import shown_url, spool_sql
        try:
            spool = tempfile.TemporaryDirectory(prefix="claimaudit-db-", dir=temp_dir)
        except OSError as e:
            raise ClaimsError(f"--temp-dir {temp_dir}: cannot make a directory there: {e.strerror}") from None
        with spool as d:
            path = Path(d) / "claims.parquet"
            seen: dict = {}  # each column's type as the database gave it
            spool_sql(self.claims, path, table=self.table, query=self.query, seen=seen)
            check_columns(shown_url(self.claims), pq.read_schema(path).names, rules)  # named as the user wrote it
            _warn_numeric_codes(pa.schema(list(seen.items())))
            yield str(path)

    def read(self, select=None):
        """The claims as an Arrow table, and how messages name them."""
        from claimaudit.connectors.claims import read_table
        if not self.database:
            return read_table(Path(self.claims), select=select), Path(self.claims)
        import pyarrow as pa

        from claimaudit.connectors.sql import read_sql, shown_url
        seen: dict = {}
        table = read_sql(self.claims, table=self.table, query=self.query, seen=seen)
        _warn_numeric_codes(pa.schema(list(seen.items())))
        if select is not None:
            table = table.select(list(select({n: table.schema.field(n).type for n in table.column_names})))
        return table, shown_url(self.claims)


def _is_url(text: str) -> bool:
    from claimaudit.connectors.sql import is_database_url
    return is_database_url(text)


def _warn_numeric_codes(schema) -> None:
    """A note for code fields the database holds as numbers: their leading zeros are gone."""
    from claimaudit.connectors.sql import numeric_codes
    codes = numeric_codes(schema)
    if codes:
        click.echo(f"note: the database holds {', '.join(codes)} as numbers: read as text without leading zeros "
                   "(02 stored as 2 reads \"2\" and matches no \"02\"); store codes as text", err=True)


def _write_outcome(outcome, claims: str, out_path, quarantine_path, out_table: str, append: bool) -> tuple:
    """The findings and quarantined rows written where asked; how the summary names the two places."""
    from claimaudit.connectors.sinks import write_records, write_table
    from claimaudit.connectors.sql import is_database_url, shown_url, write_sql
    records = [q.to_record() for q in outcome.quarantined]
    if out_path and is_database_url(out_path):
        qtable = quarantine_path or f"{out_table}_quarantine"
        write_sql(outcome.findings, out_path, out_table, replace=not append)
        write_sql(_quarantine_table(records), out_path, qtable, replace=not append)
        where = shown_url(out_path)
        return f"{where} table {out_table}", f"{where} table {qtable}"
    out = Path(out_path) if out_path else Path(claims).with_name("findings.parquet")
    qpath = Path(quarantine_path) if quarantine_path else out.with_name(out.stem + ".quarantine" + out.suffix)
    write_table(outcome.findings, out)
    if records:
        write_records(records, qpath)
    return out, qpath


def _quarantine_table(records: list):
    """Quarantined rows as a table of fixed columns (a database table is made even when none were set aside)."""
    import pyarrow as pa
    schema = pa.schema([("row", pa.int64()), ("field", pa.string()), ("reason", pa.string()),
                        ("feedetl_sn", pa.string())])
    return pa.Table.from_pylist([{**r, "feedetl_sn": None if r["feedetl_sn"] is None else str(r["feedetl_sn"])}
                                 for r in records], schema=schema)


def _fail(message: str):
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _count_option(name: str, text: str) -> int:
    """A whole number ≥ 1 given to ``name``, or a one-line error."""
    try:
        n = int(str(text).replace("_", "").replace(",", ""))
    except ValueError:
        n = 0
    if n < 1:
        _fail(f"{name} takes a whole number of at least 1, not {text!r}")
    return n


def _audit_batch(engine, claims: str, asked: int | None, budget: int, temp_dir: str | None, jobs: int = 1,
                 recipe=None):
    """The batch audit: in memory, or partition by partition when asked (or when the input exceeds ``budget``
    lines, or ``jobs`` > 1) and the rules allow it; the partitions in up to ``jobs`` worker processes."""
    from claimaudit.connectors.claims import check_columns
    from claimaudit.connectors.partition import ClaimsSource

    from .partitioned import audit_partitioned, partitions_for, scope_problem
    if asked == 1:
        if jobs > 1:
            click.echo(f"note: --partitions 1 audits the whole input in memory in this process; --jobs {jobs} "
                       "is not used", err=True)
        return _audit_in_memory(engine, claims, "batch")
    source = ClaimsSource(Path(claims), select=engine.columns_to_read)
    # every worker gets a partition of its own
    k = asked if asked is not None else max(partitions_for(source.row_count(), budget), jobs)
    if k > 1:
        problem = scope_problem(engine)
        if problem and asked is not None:
            _fail(f"--partitions {asked}: {problem}; use --partitions 1")
        if problem and jobs > 1:
            _fail(f"--jobs {jobs}: {problem}; use --jobs 1")
        if problem:
            click.echo(f"note: {problem}; auditing the whole input in memory", err=True)
            k = 1
    if k == 1:
        return _audit_in_memory(engine, claims, "batch")
    check_columns(Path(claims), source.names, engine.rules)  # before any partition is written
    outcome = audit_partitioned(engine, source, k, temp_dir, jobs, recipe)
    how = f"by {outcome.workers} worker processes at once" if outcome.workers > 1 else "one after another"
    click.echo(f"{k} partitions by patient (psn_no), audited {how}")
    merged = sum(1 for g in outcome.groups if len(g) > 1)
    if merged:
        click.echo(f"note: some encounter ids hold lines of patients in different partitions; {merged} group(s) "
                   "of partitions were audited together to keep each encounter whole", err=True)
    return outcome


def _audit_in_memory(engine, source, executor: str):
    """The whole input in memory (``source``: a claims path, or a _ClaimsInput)."""
    from dataclasses import replace

    from claimaudit.connectors.claims import check_columns, lines_from_records
    from claimaudit.connectors.netting import net_table

    from .partitioned import AuditOutcome
    if not isinstance(source, _ClaimsInput):
        source = _ClaimsInput(str(source))
    table, named = source.read(None if executor == "reference" else engine.columns_to_read)
    check_columns(named, table.column_names, engine.rules)
    table, input_rows, set_aside = net_table(table)  # invalid lines out, refunds netted
    if executor == "reference":
        lines, quarantined = lines_from_records(table.to_pylist())
        findings = list(engine.run(lines))
    else:
        hits, columns = engine.run_table(table)
        findings = engine.findings(hits, columns)
        quarantined = columns.quarantined()
    n_lines = table.num_rows - len(quarantined)
    quarantined = sorted([replace(q, row=int(input_rows[q.row - 1])) for q in quarantined] + set_aside,
                         key=lambda q: q.row)
    return AuditOutcome(findings_table(findings), quarantined, n_lines)


def _stages(stages):
    from claimaudit.dsl.check import STAGES
    bad = [s for s in stages if s not in STAGES]
    if bad:
        click.echo(f"error: --stage {bad[0]!r} is not one of 事前, 事中, 事后", err=True)
        sys.exit(EXIT_USAGE)
    return {STAGES[s] for s in stages}


def _print_summary(rs, findings, n_lines, quarantined, elapsed, out, qpath):
    """The summary per rule, from the findings table as written."""
    con = _console()
    columns = findings.select(["rule_code", "rule_name", "result_type", "outcome", "amount"]).to_pydict()
    by_rule = defaultdict(lambda: [0, 0.0, 0])
    for code, name, rtype, outcome, amount in zip(*columns.values()):
        row = by_rule[(code, name, rtype)]
        if outcome == VIOLATION:
            row[0] += 1
            row[1] += amount or 0.0
        else:
            row[2] += 1
    table = Table(title=f"{rs.name} {rs.version} — 审核结果", show_footer=True)
    table.add_column("规则编码", footer="合计")
    table.add_column("规则名称")
    table.add_column("结果类型")
    table.add_column("违规明细", justify="right", footer=str(sum(r[0] for r in by_rule.values())))
    table.add_column("违规金额(元)", justify="right", footer=f"{sum(r[1] for r in by_rule.values()):.2f}")
    table.add_column("数据不足", justify="right", footer=str(sum(r[2] for r in by_rule.values())))
    for (code, name, rtype), (n, amt, ins) in sorted(by_rule.items()):
        table.add_row(code, name, rtype, str(n), f"{amt:.2f}", str(ins))
    con.print(table)
    outcomes = columns["outcome"]
    con.print(f"{n_lines} line(s) audited in {elapsed:.2f}s; "
              f"{sum(1 for o in outcomes if o == VIOLATION)} finding(s), "
              f"{sum(1 for o in outcomes if o == INSUFFICIENT)} insufficient-data outcome(s) -> {out}",
              markup=False)
    marks = findings.select(["shadow", "exemption", "profile"]).to_pydict()
    shadow = sum(1 for s in marks["shadow"] if s)
    exempt = sum(1 for e in marks["exemption"] if e is not None)
    if shadow or exempt:
        con.print(f"profile {marks['profile'][0]}: {shadow} finding(s) in shadow mode, {exempt} exempted "
                  "(kept in the findings file, marked)", markup=False)
    if quarantined:
        con.print(f"{len(quarantined)} row(s) quarantined (malformed, invalid or refund lines: not audited) "
                  f"-> {qpath}", markup=False)
        for q in quarantined[:10]:
            con.print(f"  row {q.row}, field {q.field}: {q.reason}", markup=False)
        if len(quarantined) > 10:
            con.print(f"  … {len(quarantined) - 10} more in {qpath}", markup=False)


@main.command()
@click.option("--rules", "rules_path", required=True, type=click.Path(),
              help="Rule file or directory, or a compiled bundle.")
@click.argument("request", type=click.Path())
@click.option("--stage", "stages", multiple=True, default=("事前", "事中"), show_default=True,
              help="Only rules for these stages.")
@click.option("--executor", type=click.Choice(["inline", "reference"]), default="inline", show_default=True,
              help="inline: the compiled screener; reference: the rule-by-rule oracle.")
@click.option("--profile", "profile", type=click.Path(), help=PROFILE_HELP + " Shadow-mode and exempted findings "
              "are listed apart, never in result[].")
def screen(rules_path, request, stages, executor, profile):
    """Screen one prescription (a 3101-shaped JSON request; '-' reads stdin) before it is issued.

    Prints the response: result[] with one entry per finding (rule, message, severity, evidence,
    amount, per-line roles), and insufficient_data[] for checks the data could not decide.
    """
    from claimaudit.connectors.request import RequestError, parse_json, request_lines

    from .inline import Screener

    plan = _load_plan_or_exit(rules_path, profile)
    wanted = _stages(stages)
    try:
        text = sys.stdin.read() if request == "-" else Path(request).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        click.echo(f"error: cannot read {request}: {e}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        doc = parse_json(text, request)
        if executor == "inline":
            response = Screener(plan, stages=wanted).screen(doc)
        else:
            response = screen_request(plan.ruleset, request_lines(doc), wanted)
    except RequestError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(json.dumps(response, ensure_ascii=False, indent=2, default=str))


def screen_request(rs: Ruleset, req, stages) -> dict:
    """The reference interpreter's answer to a request, in the same response shape as the screener's."""
    started = time.perf_counter()
    engine = ReferenceEngine(rs, stages=stages, rule_codes=req.rule_ids or None)
    findings = list(engine.run(l for l in req.lines if l["feedetl_sn"] in req.current))
    return screen_response(findings, rs, "reference", (time.perf_counter() - started) * 1e6)


@main.command()
@click.argument("path", type=click.Path())
def explain(path):
    """Show how the rules under PATH (or a bundle) compile: families, sizes, keys, templates, fallbacks."""
    click.echo(_load_plan_or_exit(path).explain())


@main.command(name="compile")
@click.argument("path", type=click.Path())
@click.option("-o", "--out", "out_path", required=True, type=click.Path(), help="Bundle directory to write.")
def compile_(path, out_path):
    """Compile the rules under PATH into a bundle (plan + Arrow parameter tables + manifest)."""
    from .bundle import BundleError, write_bundle
    from .plan import build_plan
    started = time.perf_counter()
    rs = _load_or_exit(path)
    plan = build_plan(rs)
    try:
        manifest = write_bundle(plan, out_path)
    except (BundleError, OSError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{out_path}: {manifest['rules']} rule(s), {manifest['families']} family(ies), "
               f"{manifest['parameter_rows']} parameter row(s), content {manifest['content_hash'][:16]} "
               f"({time.perf_counter() - started:.2f}s)")


from .cli_kb import kb  # noqa: E402  (command groups kept in their own modules)
from .cli_lint import lint  # noqa: E402

main.add_command(kb)
main.add_command(lint)

if __name__ == "__main__":
    main()
