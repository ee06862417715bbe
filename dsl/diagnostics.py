"""Coded diagnostics with file:line:col and a caret under the span.

Columns count characters, not bytes; the caret line pads by display width so it sits under
CJK text in a terminal (wide characters take two cells).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .ast import Span

# Stable codes: tests and users key on them. Never renumber; add new ones at the end.
CODES = {
    "syntax_error": "the text is not valid rule language",
    "unknown_field": "a name that is neither a claim field, a derived value nor a lookup binding",
    "unknown_table": "a lookup names a table that is not declared",
    "unknown_column": "a qualified name refers to a column the table does not declare",
    "unknown_function": "a call to a function the language does not have",
    "wrong_arguments": "a function called with the wrong number of arguments",
    "type_mismatch": "an operator applied to values of incompatible types",
    "unit_mismatch": "quantities of different dimensions compared or combined",
    "unknown_unit": "a quantity with a unit the language does not know",
    "bad_date": "a date that does not exist in the calendar, or a range that ends before it starts",
    "duplicate_rule_code": "two rules with the same code",
    "duplicate_table": "two tables with the same name",
    "duplicate_attribute": "a rule statement given twice",
    "unknown_placeholder": "a message placeholder that names nothing",
    "bad_attribute_value": "a result type, severity, stage, match kind or column type that is not allowed",
    "missing_attribute": "a rule without a statement it needs (when, message, result)",
    "table_file_missing": "a knowledge table file that does not exist",
    "table_missing_column": "a knowledge table file without a declared column",
    "table_bad_value": "a knowledge table cell that cannot be read as its declared type",
    "bad_example": "an example that names an unknown field or line label, or has a wrong value type",
    "bad_metadata": "ruleset metadata that is unknown or given twice",
    "bad_profile": "a local profile that does not read, or names a setting, rule or scope the pack lacks",
    "no_rules": "a path with no rule files",
}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    severity: str = "error"  # error | warning
    hint: str | None = None

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"undeclared diagnostic code {self.code!r}")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


_TAB = "    "


def render(diag: Diagnostic, source_lines: dict[str, list[str]] | None = None) -> str:
    """Render as ``file:line:col: error[code]: message`` plus the source line and a caret."""
    where = str(diag.span) if diag.span else "<ruleset>"
    out = [f"{where}: {diag.severity}[{diag.code}]: {diag.message}"]
    lines = (source_lines or {}).get(diag.span.file) if diag.span else None
    if diag.span and lines and 1 <= diag.span.line <= len(lines):
        src = lines[diag.span.line - 1].rstrip("\n")
        gutter = f"{diag.span.line:>5} | "
        start = max(diag.span.col - 1, 0)
        if diag.span.end_line == diag.span.line:
            end = max(diag.span.end_col - 1, start + 1)
        else:
            end = len(src)
        end = min(end, max(len(src), start + 1))
        # A tab would jump to the terminal's next tab stop and push the text past the caret: show
        # it as a fixed run of spaces on both lines.
        pad = display_width(src[:start].replace("\t", _TAB))
        width = max(display_width(src[start:end].replace("\t", _TAB)), 1)
        out.append(gutter + src.replace("\t", _TAB))
        out.append(" " * (len(gutter) - 2) + "| " + " " * pad + "^" * width)
    if diag.hint:
        out.append(f"      = hint: {diag.hint}")
    return "\n".join(out)


def span_of_token(file: str, tok) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)
