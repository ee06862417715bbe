"""``claimaudit lint PATH``: static checks of a rule pack (see engine/lint.py for the codes)."""
from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from .lint import CODES, ERROR, WARNING, LintPathError, lint_path, render_finding, report_json

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON document instead of text.")
@click.option("--fail-on", type=click.Choice([ERROR, WARNING]), default=ERROR, show_default=True,
              help="Exit 1 when a finding of this severity or worse is found (warning: any finding).")
@click.option("--profile", "profile", type=click.Path(),
              help="A local profile: its exemptions are checked against the pack (L007).")
def lint(path, as_json, fail_on, profile):
    """Lint the rule pack under PATH: duplicate or contradicting knowledge rows, malformed national
    codes, rules that can never fire, rules without (flagged) examples.

    Each finding has a stable code (L001 …), a severity and a location: file:line:col in rule
    files, file:row:column in knowledge tables. Exit status: 0 clean, 1 findings at --fail-on or
    worse, 2 a bad path.
    """
    try:
        report = lint_path(path, profile)
    except LintPathError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(report_json(report), ensure_ascii=False, indent=2, default=str))
    else:
        _print_text(report)
    sys.exit(EXIT_FINDINGS if report.fails(fail_on) else EXIT_OK)


def _print_text(report) -> None:
    rs = report.ruleset
    for f in report.findings:
        text = render_finding(f, rs.sources)
        head, _, rest = text.partition("\n")
        color = "red" if f.severity == ERROR else "yellow"
        head = head.replace(f"{f.severity}[", click.style(f.severity, fg=color, bold=True) + "[", 1)
        click.echo(head + ("\n" + rest if rest else ""))
    con = Console(highlight=False)
    if not con.is_terminal:  # pipes and CI logs: rich would assume 80 columns and cut Chinese text
        con = Console(highlight=False, width=160)
    if report.findings:
        counts: dict[str, list] = {}
        for f in report.findings:
            row = counts.setdefault(f.code, [0, 0])
            row[0 if f.severity == ERROR else 1] += 1
        table = Table(title="lint 检查结果")
        table.add_column("code")
        table.add_column("check")
        table.add_column("errors", justify="right")
        table.add_column("warnings", justify="right")
        for code in sorted(counts):
            table.add_row(code, CODES[code][0], str(counts[code][0]), str(counts[code][1]))
        con.print(table)
    rows = sum(len(t) for t in rs.tables.values())
    con.print(f"{len(rs.files)} file(s), {len(rs.rules)} rule(s), {len(rs.tables)} table(s) with {rows} knowledge "
              f"row(s): {report.count(ERROR)} error(s), {report.count(WARNING)} warning(s)", markup=False)
