"""Load a ruleset: every ``.rules`` file under a path, its knowledge tables, checked into IR.

This is the front end every command shares (check, test, audit, screen, and later compile).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ast, ir
from .check import check_rule
from .diagnostics import Diagnostic, render
from .knowledge import KnowledgeTable, load_table
from .parse import no_cyclic_gc, parse_file

META_KEYS = ("version", "authority", "source", "description", "published")


@dataclass
class Ruleset:
    name: str
    version: str
    meta: dict
    tables: dict[str, KnowledgeTable]
    rules: tuple  # of ir.Rule
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    files: tuple = ()
    profile: object = None  # the local profile applied (dsl.profile.Profile), if any
    settings_used: dict = field(default_factory=dict)  # setting name -> (default, span)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def render_diagnostics(self) -> str:
        return "\n".join(render(d, self.sources) for d in self.diagnostics)

    def rule(self, code: str) -> ir.Rule | None:
        return next((r for r in self.rules if r.code == code), None)


def rule_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.rules") if p.is_file())


def load_ruleset(path: str | Path, profile: str | Path | None = None) -> Ruleset:
    """Parse, load tables and check; with a local profile, its settings, rule overrides and exemptions
    apply. Never raises for user mistakes; read ``.diagnostics``."""
    prof, pdiags = (None, [])
    if profile is not None:
        from .profile import load_profile
        prof, pdiags = load_profile(profile)
    with no_cyclic_gc():
        rs = _load_ruleset(path, prof.settings if prof else None)
    rs.diagnostics.extend(pdiags)
    if prof is not None:
        from .profile_apply import apply_profile
        apply_profile(rs, prof)
        rs.sources[prof.path] = prof.lines
    return rs


def _load_ruleset(path: str | Path, settings: dict | None = None) -> Ruleset:
    path = Path(path)
    diags: list[Diagnostic] = []
    if not path.exists():
        diags.append(Diagnostic("no_rules", f"'{path}' does not exist", None))
        return Ruleset(str(path), "", {}, {}, (), diags)
    files = [parse_file(p) for p in rule_files(path)]
    if not files:
        diags.append(Diagnostic("no_rules", f"no .rules files under '{path}'", None))
    sources = {f.path: f.text.split("\n") for f in files}  # the parser breaks lines at \n only
    for f in files:
        diags.extend(f.diagnostics)

    name, meta = (path.resolve().stem or "ruleset"), {}
    decls = [d for f in files for d in f.ruleset]
    for extra in decls[1:]:
        diags.append(Diagnostic("bad_metadata", "a ruleset is declared more than once", extra.span,
                                hint=f"first declared at {decls[0].span}"))
    if decls:
        name = decls[0].name
        for m in decls[0].meta:
            if m.key not in META_KEYS:
                diags.append(Diagnostic("bad_metadata", f"unknown ruleset field '{m.key}'", m.span,
                                        hint=f"known: {', '.join(META_KEYS)}"))
            elif m.key in meta:
                diags.append(Diagnostic("bad_metadata", f"ruleset field '{m.key}' is given twice", m.span))
            else:
                meta[m.key] = m.value
    version = str(meta.get("version", "0"))

    tables: dict[str, KnowledgeTable | None] = {}
    table_spans: dict[str, ast.Span] = {}
    for f in files:
        for t in f.tables:
            if t.name in tables:
                diags.append(Diagnostic("duplicate_table", f"table '{t.name}' is declared twice", t.span,
                                        hint=f"first declared at {table_spans[t.name]}"))
                continue
            table, tdiags = load_table(t, Path(f.path).parent)
            tables[t.name], table_spans[t.name] = table, t.span
            diags.extend(tdiags)

    rules, codes, settings_used = [], {}, {}
    for f in files:
        for decl in f.rules:
            if decl.code in codes:
                diags.append(Diagnostic("duplicate_rule_code", f"rule code {decl.code} is already used", decl.code_span,
                                        hint=f"first used at {codes[decl.code]}"))
                continue
            codes[decl.code] = decl.code_span
            rule, rdiags = check_rule(decl, tables, version, settings, settings_used)
            diags.extend(rdiags)
            if rule is not None:
                rules.append(rule)
    loaded = {k: v for k, v in tables.items() if v is not None}
    return Ruleset(name, version, meta, loaded, tuple(rules), diags, sources, tuple(f.path for f in files),
                   settings_used=settings_used)
