"""Local profiles: what a bureau keeps beside the national pack (TOML, UTF-8).

    [profile]
    name = "某市医保局本地配置"
    version = "2026.1"

    [settings]                      # values of setting("name", default) in the rules
    readmission_days = 15

    [rules.GZ10000204001000]        # per rule: stages, severity, shadow mode, off
    stages = ["事后"]
    severity = "提醒"
    shadow = true                   # evaluated and recorded, never shown to prescribers
    enabled = true

    [[exemptions]]                  # findings inside the scope are kept but marked exempt
    rule = "DEMO_DDI"               # every scope key is optional; all given ones must match
    point_id = "DDI-0002"
    fixmedins_code = "H001"
    bilg_dept_codg = "0301"
    bilg_dr_codg = "D001"
    psn_no = "…"
    period = "2025-01-01/2025-12-31"
    reason = "抗凝门诊在药师监护下联用"
    authority = "某医保发〔2025〕12号"

Problems are diagnostics with the profile's file and line, like rule-file problems.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .ast import Span
from .diagnostics import Diagnostic

SCOPE_KEYS = ("rule", "point_id", "fixmedins_code", "bilg_dept_codg", "bilg_dr_codg", "psn_no")
_RULE_KEYS = ("stages", "severity", "shadow", "enabled")


@dataclass(frozen=True)
class Exemption:
    scope: tuple  # of (key, value) for the SCOPE_KEYS given
    period: tuple  # (from, to) dates, None for an open end
    reason: str
    authority: str
    line: int

    def describe(self) -> str:
        return f"{self.reason}（{self.authority}）"

    def as_lint_input(self, path: str) -> dict:
        out = dict(self.scope)
        if self.period != (None, None):
            out["period"] = self.period
        out.update(file=path, line=self.line)
        return out


@dataclass(frozen=True)
class RuleOverride:
    stages: tuple | None = None
    severity: str | None = None
    shadow: bool = False
    enabled: bool = True
    line: int = 0


@dataclass
class Profile:
    name: str
    version: str
    path: str
    settings: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)  # the file's text, for locating and showing problems
    rules: dict = field(default_factory=dict)  # rule code -> RuleOverride
    exemptions: tuple = ()

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()


def load_profile(path: str | Path) -> tuple[Profile | None, list[Diagnostic]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return None, [Diagnostic("bad_profile", f"cannot read profile '{path}': {e}", None)]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        return None, [Diagnostic("bad_profile", f"not valid TOML: {str(e).split(' (at')[0]}",
                                 Span(str(path), line, col, line, col + 1))]
    lines = text.split("\n")
    diags: list[Diagnostic] = []

    def where(pattern: str, nth: int = 0) -> Span:
        hits = [i for i, ln in enumerate(lines, 1) if re.match(pattern, ln.strip())]
        n = hits[nth] if len(hits) > nth else 1
        return Span(str(path), n, 1, n, max(2, len(lines[n - 1]) + 1 if lines else 2))

    head = doc.get("profile", {})
    profile = Profile(str(head.get("name", path.stem)), str(head.get("version", "")), str(path), lines=lines)
    unknown = set(doc) - {"profile", "settings", "rules", "exemptions"}
    for key in sorted(unknown):
        diags.append(Diagnostic("bad_profile", f"unknown section [{key}]", where(rf"\[+{re.escape(key)}\b"),
                                hint="sections: [profile], [settings], [rules.CODE], [[exemptions]]"))
    profile.settings = dict(doc.get("settings", {}))
    for code, body in doc.get("rules", {}).items():
        profile.rules[code] = _rule_override(code, body, where(rf'\[rules\."?{re.escape(code)}"?\]'), diags)
    exemptions = []
    for n, body in enumerate(doc.get("exemptions", [])):
        ex = _exemption(body, where(r"\[\[exemptions\]\]", n), diags)
        if ex is not None:
            exemptions.append(ex)
    profile.exemptions = tuple(exemptions)
    return profile, diags


def _rule_override(code: str, body, span: Span, diags: list) -> RuleOverride:
    from .check import SEVERITIES, STAGES
    if not isinstance(body, dict):
        diags.append(Diagnostic("bad_profile", f"rules.{code} must be a table of settings", span))
        return RuleOverride(line=span.line)
    for key in sorted(set(body) - set(_RULE_KEYS)):
        diags.append(Diagnostic("bad_profile", f"rules.{code}: unknown key '{key}'", span,
                                hint=f"keys: {', '.join(_RULE_KEYS)}"))
    stages = body.get("stages")
    if stages is not None:
        bad = [s for s in stages if s not in STAGES] if isinstance(stages, list) else [stages]
        if bad:
            diags.append(Diagnostic("bad_profile", f"rules.{code}: stage {bad[0]!r} is not 事前, 事中 or 事后", span))
            stages = None
        else:
            stages = tuple(STAGES[s] for s in stages)
    severity = body.get("severity")
    if severity is not None and severity not in SEVERITIES:
        diags.append(Diagnostic("bad_profile", f"rules.{code}: severity {severity!r} is not one of "
                                f"{', '.join(sorted(set(SEVERITIES)))}", span))
        severity = None
    for key in ("shadow", "enabled"):
        if key in body and not isinstance(body[key], bool):
            diags.append(Diagnostic("bad_profile", f"rules.{code}: {key} is true or false", span))
    return RuleOverride(stages, SEVERITIES.get(severity) if severity else None, body.get("shadow") is True,
                        body.get("enabled", True) is not False, span.line)


def _exemption(body: dict, span: Span, diags: list) -> Exemption | None:
    problems = []
    for key in sorted(set(body) - set(SCOPE_KEYS) - {"period", "reason", "authority"}):
        problems.append(f"unknown key '{key}' (scope keys: {', '.join(SCOPE_KEYS)}, period, reason, authority)")
    for key in ("reason", "authority"):
        if not str(body.get(key, "")).strip():
            problems.append(f"an exemption needs a {key}" + (" (the document number)" if key == "authority" else ""))
    scope = tuple((k, str(body[k])) for k in SCOPE_KEYS if k in body)
    if not scope:
        problems.append("an exemption needs a scope: rule, point_id, institution, department, doctor or patient")
    period = (None, None)
    if "period" in body:
        period = _period(body["period"])
        if period is None:
            problems.append(f"period {body['period']!r} is not 'YYYY-MM-DD/YYYY-MM-DD' (either end may be empty)")
            period = (None, None)
    for p in problems:
        diags.append(Diagnostic("bad_profile", f"exemption: {p}", span))
    if problems:
        return None
    return Exemption(scope, period, str(body["reason"]), str(body["authority"]), span.line)


def _period(value):
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    start, _, end = text.partition("/")
    try:
        return (dt.date.fromisoformat(start) if start.strip() else None,
                dt.date.fromisoformat(end) if end.strip() else None)
    except ValueError:
        return None
