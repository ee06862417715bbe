"""``claimaudit lint``: static checks of a rule pack beyond what ``claimaudit check`` requires.

``check`` refuses what cannot run; ``lint`` reports what runs but is probably wrong: knowledge rows
that duplicate or contradict each other, codes that do not look like national codes, rules that can
never fire, rules without (positive) examples, exemptions that match nothing.

Every finding has a stable code (never renumbered; new ones are added at the end), a severity, and
a location: file:line:col for rule files (rendered with the source line and a caret, like check's
diagnostics) or file, row and column for knowledge tables.

    lint_ruleset(rs)                  -> list[LintFinding]   (tables and rules)
    lint_exemptions(exemptions, rs)   -> list[LintFinding]   (L007; profiles will call it)
    lint_path(path)                   -> LintReport          (load + both; raises LintPathError)
"""
from __future__ import annotations

import datetime as dt
import difflib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from claimaudit.dsl.ast import Span
from claimaudit.dsl.diagnostics import display_width, render
from claimaudit.dsl.ruleset import Ruleset, load_ruleset, rule_files

ERROR, WARNING = "error", "warning"
SEVERITY_RANK = {WARNING: 1, ERROR: 2}

# Stable codes: tests, CI scripts and users key on them. Never renumber; add new ones at the end.
CODES: dict[str, tuple[str, str]] = {
    "L000": ("check-failed", "a problem `claimaudit check` reports (the pack does not load cleanly)"),
    "L001": ("duplicate-row", "knowledge rows with the same key and the same values (a line matching them gets "
                              "one finding per row)"),
    "L002": ("contradicting-rows", "knowledge rows for the same key (or nested prefixes) with different "
                                   "constraint values"),
    "L003": ("bad-code", "a code that does not look like a national code of its kind, or has stray whitespace "
                         "or full-width characters"),
    "L004": ("never-fires", "a rule that can never produce a finding"),
    "L005": ("no-examples", "a rule without examples"),
    "L006": ("no-flagged-example", "a rule whose examples never expect a flagged line"),
    "L007": ("exemption-matches-nothing", "an exemption naming a rule or knowledge point the pack does not have"),
}


@dataclass(frozen=True)
class LintFinding:
    code: str  # L001 …
    severity: str  # error | warning
    message: str
    span: Span | None = None  # rule-file problems
    file: str | None = None  # table problems (and exemptions that say where they were written)
    row: int | None = None  # file row of a table (CSV: the physical line for one-line rows; header is row 1)
    column: str | None = None  # table column name
    value: str | None = None  # the cell value or code at fault
    position: int | None = None  # 0-based character position inside ``value`` (for the caret)
    other_row: int | None = None  # the row a duplicate / contradiction is with
    rule: str | None = None
    table: str | None = None
    hint: str | None = None
    check_code: str | None = None  # L000: the check diagnostic's own code

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"undeclared lint code {self.code!r}")
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"bad severity {self.severity!r}")

    @property
    def name(self) -> str:
        return CODES[self.code][0]

    @property
    def location(self) -> str:
        if self.span is not None:
            return str(self.span)
        if self.file and self.row is not None:
            return f"{self.file}:{self.row}" + (f":{self.column}" if self.column else "")
        return self.file or ("<exemptions>" if self.code == "L007" else "<ruleset>")

    def sort_key(self):
        line = self.span.line if self.span else (self.row or 0)
        col = self.span.col if self.span else 0
        return (self.span.file if self.span else (self.file or ""), line, col, self.column or "", self.code)

    def to_dict(self) -> dict:
        s = self.span
        return {
            "code": self.code, "name": self.name, "severity": self.severity, "message": self.message,
            "hint": self.hint,
            "file": s.file if s else self.file,
            "line": s.line if s else None, "col": s.col if s else None,
            "end_line": s.end_line if s else None, "end_col": s.end_col if s else None,
            "row": self.row, "column": self.column, "value": self.value, "other_row": self.other_row,
            "rule": self.rule, "table": self.table, "check_code": self.check_code,
        }


class LintPathError(Exception):
    """The path to lint does not exist or holds no rule files (a usage mistake, not a finding)."""


@dataclass
class LintReport:
    ruleset: Ruleset
    findings: list[LintFinding] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def fails(self, fail_on: str) -> bool:
        """True when some finding is at least as severe as ``fail_on`` (error | warning)."""
        return any(SEVERITY_RANK[f.severity] >= SEVERITY_RANK[fail_on] for f in self.findings)


def display_path(path: str) -> str:
    """Relative to the working directory when inside it (as rule-file spans are), else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


# ---- the whole pack ------------------------------------------------------------------------------


def lint_path(path: str | Path, profile: str | Path | None = None) -> LintReport:
    path = Path(path)
    if not path.exists():
        raise LintPathError(f"'{path}' does not exist")
    if not rule_files(path):
        raise LintPathError(f"no .rules files under '{path}'")
    if profile is not None and not Path(profile).exists():
        raise LintPathError(f"profile '{profile}' does not exist")
    rs = load_ruleset(path, profile)
    findings = lint_ruleset(rs)
    if rs.profile is not None:
        exemptions = [e.as_lint_input(rs.profile.path) for e in rs.profile.exemptions]
        findings = sorted(findings + lint_exemptions(exemptions, rs), key=LintFinding.sort_key)
    return LintReport(rs, findings)


def lint_ruleset(rs: Ruleset) -> list[LintFinding]:
    from .lint_rules import lint_rules
    from .lint_tables import lint_tables

    findings = lint_tables(rs) + lint_rules(rs)
    covered = {(f.span.file, f.span.line, f.span.col) for f in findings if f.span is not None}
    for d in rs.diagnostics:
        # A range that ends before it starts is L004 (the rule never fires); check's bad_date at the same
        # place would say it twice.
        if d.span is not None and d.code == "bad_date" and (d.span.file, d.span.line, d.span.col) in covered:
            continue
        findings.append(LintFinding("L000", ERROR if d.is_error else WARNING, d.message, span=d.span, hint=d.hint,
                                    check_code=d.code))
    return sorted(findings, key=LintFinding.sort_key)


# ---- exemptions (L007) ---------------------------------------------------------------------------

EXEMPTION_KEYS = ("rule", "point_id", "fixmedins_code", "bilg_dept_codg", "bilg_dr_codg", "psn_no", "period")


def lint_exemptions(exemptions: Iterable[Mapping], rs: Ruleset) -> list[LintFinding]:
    """Warnings (L007) for exemptions that can never match a finding of this pack.

    Each exemption is a mapping of scope keys (all optional; a missing key means "any"):
      ``rule``            rule code
      ``point_id``        knowledge point id (the table column with role id; ``knowledge_id`` is accepted too)
      ``fixmedins_code``, ``bilg_dept_codg``, ``bilg_dr_codg``, ``psn_no``   institution, department, doctor,
                          patient (claim values; the pack cannot check them)
      ``period``          (from, to) dates, a {"from": …, "to": …} mapping or "YYYY-MM-DD/YYYY-MM-DD";
                          either end may be None / empty (open)
      ``file``, ``line``  where the exemption was written (used for the finding's location)
    Reported: an unknown rule code; an unknown knowledge point id; a point the named rule never cites
    (it looks up another table, or none); a period that cannot be read, ends before it starts, or
    lies outside the rule's effective window.
    """
    points: dict[str, list[tuple[str, int]]] = {}
    for t in rs.tables.values():
        id_col = t.role_column("id")
        if id_col is None:
            continue
        for row, file_row in zip(t.rows, t.row_numbers):
            if row.get(id_col) is not None:
                points.setdefault(str(row[id_col]), []).append((t.name, file_row))
    by_code = {r.code: r for r in rs.rules}
    codes = list(by_code)
    out: list[LintFinding] = []
    for i, ex in enumerate(exemptions):
        label = f"exemption #{i + 1}"
        where = {}
        line = ex.get("line")
        if ex.get("file") and isinstance(line, int) and line > 0:
            where["span"] = Span(str(ex["file"]), line, 1, line, 2)
        elif ex.get("file"):
            where["file"] = str(ex["file"])

        def warn(message, hint=None, rule=None):
            out.append(LintFinding("L007", WARNING, f"{label}: {message}", hint=hint, rule=rule, **where))

        rule_code = ex.get("rule")
        rule = by_code.get(str(rule_code)) if rule_code not in (None, "") else None
        if rule_code not in (None, "") and rule is None:
            close = difflib.get_close_matches(str(rule_code), codes, n=1, cutoff=0.6)
            warn(f"rule {rule_code} is not in the pack; the exemption matches nothing",
                 hint=f"did you mean {close[0]}?" if close else None, rule=str(rule_code))
        point = ex.get("point_id", ex.get("knowledge_id"))
        if point not in (None, ""):
            where_found = points.get(str(point))
            if not where_found:
                close = difflib.get_close_matches(str(point), list(points), n=1, cutoff=0.6)
                warn(f"knowledge point {point} is not in any table of the pack; the exemption matches nothing",
                     hint=f"did you mean {close[0]}?" if close else None, rule=rule.code if rule else None)
            elif rule is not None:
                tables = {t for t, _ in where_found}
                if rule.lookup is None or rule.lookup.table not in tables:
                    looks = f"looks up table {rule.lookup.table}" if rule.lookup else "looks up no table"
                    warn(f"rule {rule.code} never cites knowledge point {point} (the point is in table "
                         f"{', '.join(sorted(tables))}; the rule {looks})", rule=rule.code)
        if ex.get("period") not in (None, "", ()):
            period = _period(ex["period"])
            if period is None:
                warn(f"period {ex['period']!r} cannot be read", hint="give (from, to) dates as YYYY-MM-DD; "
                     "either end may be empty")
            else:
                start, end = period
                if start and end and end < start:
                    warn(f"period ends ({end}) before it starts ({start})")
                elif rule is not None and not windows_overlap((start, end), (rule.effective_from, rule.effective_to)):
                    warn(f"rule {rule.code} is not in effect during the period {start or '…'} to {end or '…'} "
                         f"(effective {rule.effective_from or '…'} to {rule.effective_to or '…'})", rule=rule.code)
    return out


def _date_or_none(v):
    if v in (None, ""):
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v).strip())


def _period(value):
    try:
        if isinstance(value, Mapping):
            return _date_or_none(value.get("from")), _date_or_none(value.get("to"))
        if isinstance(value, str):
            start, sep, end = value.partition("/")
            if not sep:
                return None
            return _date_or_none(start), _date_or_none(end)
        start, end = value
        return _date_or_none(start), _date_or_none(end)
    except (TypeError, ValueError):
        return None


def windows_overlap(a, b) -> bool:
    """Two closed date windows, None meaning open on that side."""
    (f1, t1), (f2, t2) = a, b
    return (f1 is None or t2 is None or f1 <= t2) and (f2 is None or t1 is None or f2 <= t1)


# ---- rendering -----------------------------------------------------------------------------------


class _AsDiagnostic:
    """The shape dsl.diagnostics.render reads, so lint findings in rule files look like check's."""

    def __init__(self, f: LintFinding):
        self.span, self.severity, self.message, self.hint = f.span, f.severity, f.message, f.hint
        self.code = f"{f.code} {f.name}"


def render_finding(f: LintFinding, sources: dict | None = None) -> str:
    if f.span is not None:
        return render(_AsDiagnostic(f), sources)
    out = [f"{f.location}: {f.severity}[{f.code} {f.name}]: {f.message}"]
    if f.value is not None and f.row is not None:
        gutter = f"{f.row:>5} | "
        lead = f"{f.column} = " if f.column else ""
        shown = f.value.replace("\t", "    ")
        out.append(gutter + lead + shown)
        if f.position is not None:
            pad = display_width(lead) + display_width(f.value[:f.position].replace("\t", "    "))
            ch = f.value[f.position:f.position + 1] or " "
            width = max(display_width(ch.replace("\t", "    ")), 1)
            out.append(" " * (len(gutter) - 2) + "| " + " " * pad + "^" * width)
    if f.hint:
        out.append(f"      = hint: {f.hint}")
    return "\n".join(out)


def report_json(report: LintReport) -> dict:
    by_code: dict[str, int] = {}
    for f in report.findings:
        by_code[f.code] = by_code.get(f.code, 0) + 1
    rs = report.ruleset
    return {
        "ruleset": rs.name, "version": rs.version,
        "files": list(rs.files), "rules": len(rs.rules),
        "tables": {n: len(t) for n, t in rs.tables.items()},
        "summary": {"errors": report.count(ERROR), "warnings": report.count(WARNING), "by_code": by_code},
        "findings": [f.to_dict() for f in report.findings],
    }


def visible(text: str) -> str:
    """A value quoted for a message, with invisible and full-width spaces made visible."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("␠")
        elif ch.isspace():
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def is_full_width(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("F", "W") and unicodedata.normalize("NFKC", ch) != ch
