"""Apply a local profile to a checked ruleset: its rule overrides replace stages and severities and take
every stage from disabled rules; settings it names that no rule reads, and rules it names that the pack lacks, are
errors (a typo must not silently leave the national default in force)."""
from __future__ import annotations

import difflib
from dataclasses import replace

from .ast import Span
from .diagnostics import Diagnostic


def apply_profile(rs, profile) -> None:
    path = profile.path
    codes = {r.code for r in rs.rules}
    for name in sorted(set(profile.settings) - set(rs.settings_used)):
        close = difflib.get_close_matches(name, list(rs.settings_used), n=1)
        rs.diagnostics.append(Diagnostic(
            "bad_profile", f"setting '{name}' is not read by any rule of {rs.name}",
            Span(path, _line_of(profile.lines, name), 1, _line_of(profile.lines, name), 2),
            hint=f"did you mean '{close[0]}'?" if close else
            (f"settings: {', '.join(sorted(rs.settings_used))}" if rs.settings_used else "the pack has no settings")))
    for code, override in profile.rules.items():
        if code not in codes:
            close = difflib.get_close_matches(code, sorted(codes), n=1)
            rs.diagnostics.append(Diagnostic("bad_profile", f"rules.{code}: no rule {code} in {rs.name}",
                                             Span(path, override.line, 1, override.line, 2),
                                             hint=f"did you mean '{close[0]}'?" if close else None))
    rules = []
    for r in rs.rules:  # same rules in the same order (a compiled plan refers to them by position)
        o = profile.rules.get(r.code)
        if o is None:
            rules.append(r)
        else:  # a disabled rule has no stage left, so no executor selects it
            stages = frozenset() if not o.enabled else (frozenset(o.stages) if o.stages is not None else r.stages)
            rules.append(replace(r, stages=stages, severity=o.severity or r.severity))
    rs.rules = tuple(rules)
    rs.profile = profile


def _line_of(lines: list, key: str) -> int:
    return next((n for n, line in enumerate(lines, 1) if line.strip().startswith(key)), 1)
