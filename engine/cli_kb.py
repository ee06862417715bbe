"""``claimaudit kb``: import the official national knowledge batches, compare table versions.

User mistakes (a file that is not there, a layout that is not understood, a bad option) end with a
message naming the file and sheet and exit status 2; rows that cannot be read are rejects, written
beside the output and summarised on stderr, and do not change the exit status.
"""
from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from claimaudit.connectors.kb_diff import DiffResult, diff_tables
from claimaudit.connectors.kb_import import KINDS, KbImportError, import_batch, supersede, write_outputs
from claimaudit.connectors.kb_read import parse_date

EXIT_USAGE = 2
SHOWN_REJECTS = 20
_NAME_COLUMNS = ("drug_name", "item_name", "main_name")
_CHANGE_LABELS = {"added": "新增", "removed": "删除", "changed": "修改"}


def _console() -> Console:
    con = Console(highlight=False)
    return con if con.is_terminal else Console(highlight=False, width=160)  # rich measures CJK as 2 columns


def _date_option(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _fail(message: str):
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(name="kb")
def kb():
    """Knowledge tables: import the national batch files (Excel/CSV), compare versions."""


@kb.command(name="import")
@click.option("--kind", required=True, type=click.Choice(list(KINDS)), help="Layout of the batch file(s).")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "out_path", required=True, type=click.Path(),
              help="Table to write (.csv or .parquet); TABLE.rejects.csv and TABLE.table.rules go beside it.")
@click.option("--batch", help="Batch name cited by every row (default: the first file's name).")
@click.option("--effective-from", callback=_date_option, help="First day the table applies (2025-01-01, "
              "2025/1/1, 2025年1月1日); a row's own 生效日期 column wins.")
@click.option("--effective-to", callback=_date_option, help="Last day the table applies; a row's own 失效日期 wins.")
@click.option("--table-name", help="Name in the generated table declaration (default: from the output file name).")
@click.option("--code-map", "code_maps", multiple=True, metavar="FIELD:NAME=CODES",
              help="Add or replace a name-to-code entry (gend, insutype, hosp_lv, med_type), e.g. "
                   "insutype:工伤=410 or med_type:住院=21,22. Repeatable.")
@click.option("--child-under", type=click.IntRange(min=1), default=18, show_default=True,
              help="儿童 means younger than this many years.")
@click.option("--supersede", "as_new_version", is_flag=True, help="Keep the table already at -o as the earlier version: its open "
              "rows end the day before --effective-from and the new batch's rows are added.")
def import_(kind, files, out_path, batch, effective_from, effective_to, table_name, code_maps, child_under,
            as_new_version):
    """Import national batch FILES (.xlsx or .csv) of one --kind into a knowledge table.

    Kinds: drug_restriction (限定表 + 代码表), item_restriction, duplicate_charge, frequency_limit,
    cycle_limit, course_limit.
    """
    try:
        result = import_batch(kind, files, batch=batch, effective_from=effective_from, effective_to=effective_to,
                              child_under=child_under, code_maps=code_maps)
        superseded = supersede(result, out_path, effective_from) if as_new_version else None
        paths = write_outputs(result, out_path, table_name)
    except (KbImportError, OSError) as e:
        _fail(str(e))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    skipped = [f"{n} {what} skipped" for what, n in (("empty row(s)", result.stats.get("empty_rows", 0)),
                                                     ("repeated header row(s)", result.stats.get("repeated_headers", 0)))
               if n]
    click.echo(f"{paths['table']}: {len(result.rows)} row(s) of {kind} from {result.data_rows} data row(s) in "
               f"{'; '.join(result.sheets)}, batch {result.batch}" + "".join(f", {s}" for s in skipped))
    click.echo(f"{paths['rules']}: table declaration")
    if superseded is not None:
        click.echo(f"superseded the earlier version: {superseded[0]} row(s) end on the day before "
                   f"{effective_from}, {superseded[1]} not-yet-effective row(s) replaced")
    _report_rejects(result.rejects, paths["rejects"])


def _report_rejects(rejects, path) -> None:
    if not rejects:
        return
    click.echo(f"{len(rejects)} row(s) rejected, listed in {path}:", err=True)
    for r in rejects[:SHOWN_REJECTS]:
        click.echo(f"  {r.line()}", err=True)
    if len(rejects) > SHOWN_REJECTS:
        click.echo(f"  … and {len(rejects) - SHOWN_REJECTS} more", err=True)


@kb.command()
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON instead of a table.")
def diff(old, new, as_json):
    """List knowledge points added, removed and changed from table OLD to table NEW (.csv or .parquet).

    Points are matched by code and the kind's identity (restriction, second code, period); provenance
    and effective dates are not compared.
    """
    try:
        result = diff_tables(old, new)
    except KbImportError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    con = _console()
    if result.added or result.removed or result.changed:
        con.print(_diff_table(result))
    con.print(f"{result.kind}: {len(result.added)} added, {len(result.removed)} removed, "
              f"{len(result.changed)} changed, {result.unchanged} unchanged", markup=False)


def _diff_table(result: DiffResult) -> Table:
    table = Table(title=f"{result.old_path.name} → {result.new_path.name}", show_lines=True)
    for title in ("变化", "代码", "标识", "名称", "内容", "来源"):
        table.add_column(title, overflow="fold")
    key, extra = result.identity[0], result.identity[1:]
    for change, rows in (("added", result.added), ("removed", result.removed)):
        for row in rows:
            _add_row(table, _CHANGE_LABELS[change], row.get(key, ""), _identity(row, extra), _name(row),
                     row.get("text", ""), row.get("source", ""))
    for c in result.changed:
        content = "\n".join(f"{col}: {old or '（空）'} → {new or '（空）'}" for col, (old, new) in c.changes.items())
        _add_row(table, _CHANGE_LABELS["changed"], c.identity[key], _identity(c.identity, extra), _name(c.new),
                 content, c.new.get("source", ""))
    return table


def _add_row(table: Table, *cells: str) -> None:
    table.add_row(*(Text(c) for c in cells))  # plain text: '[…]' in a batch's text is not rich markup


def _identity(row: dict, columns) -> str:
    return " ".join(f"{c}={row.get(c, '')}" for c in columns)


def _name(row: dict) -> str:
    return next((row[c] for c in _NAME_COLUMNS if row.get(c)), "")
