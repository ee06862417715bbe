"""Lint of rules: codes written in conditions (L003), rules that can never fire (L004), rules without
examples (L005) or without an example that expects a flagged line (L006)."""
from __future__ import annotations

from pathlib import Path

from claimaudit.dsl import ir
from claimaudit.dsl.ast import Span
from claimaudit.dsl.parse import parse_file
from claimaudit.dsl.ruleset import Ruleset
from claimaudit.dsl.units import Quantity

from .lint import ERROR, WARNING, LintFinding, windows_overlap
from .lint_tables import check_code, code_contexts
from .passes import conjuncts, dedupe_conjuncts, fold_constants, normalize, planned


def lint_rules(rs: Ruleset) -> list[LintFinding]:
    out: list[LintFinding] = []
    for rule in rs.rules:
        out.extend(_literal_codes(rs, rule))
        never = _never_fires(rs, rule)
        if never is not None:
            out.append(never)
        out.extend(_examples(rs, rule))
    out.extend(_inverted_effective_windows(rs))
    return out


# ---- where things are ----------------------------------------------------------------------------


def _line(rs: Ruleset, file: str, line: int) -> str | None:
    lines = rs.sources.get(file)
    return lines[line - 1] if lines and 1 <= line <= len(lines) else None


def code_span(rs: Ruleset, rule: ir.Rule) -> Span | None:
    """The rule's code on its ``rule`` line (the IR keeps the span of the whole rule)."""
    s = rule.span
    if s is None:
        return None
    text = _line(rs, s.file, s.line)
    at = text.find(rule.code, s.col - 1) if text is not None else -1
    if at < 0:
        return Span(s.file, s.line, s.col, s.line, s.col + 4)
    return Span(s.file, s.line, at + 1, s.line, at + 1 + len(rule.code))


def statement_span(rs: Ruleset, rule: ir.Rule, *keywords: str) -> Span | None:
    """The first line of the rule that starts with one of ``keywords`` (lookup, stages …), else the rule's
    code."""
    s = rule.span
    if s is not None:
        for n in range(s.line, s.end_line + 1):
            text = _line(rs, s.file, n) or ""
            body = text.lstrip()
            word = body.split(None, 1)[0] if body.strip() else ""
            if word in keywords:
                col = len(text) - len(body) + 1
                return Span(s.file, n, col, n, len(text.rstrip()) + 1)
    return code_span(rs, rule)


def _snippet(rs: Ruleset, expr) -> str:
    s = getattr(expr, "span", None)
    if s is not None and s.line == s.end_line:
        text = _line(rs, s.file, s.line)
        if text is not None and s.end_col - 1 <= len(text):
            return text[s.col - 1:s.end_col - 1]
    shown = ir.show(expr)
    return shown[1:-1] if shown.startswith("(") and shown.endswith(")") else shown


# ---- L003: codes written in conditions -------------------------------------------------------------


def _item_span(rs: Ruleset, span: Span | None, value: str) -> Span | None:
    """Inside a set literal the IR keeps the span of the whole set: find the item's own column."""
    if span is None or span.line != span.end_line:
        return span
    text = _line(rs, span.file, span.line) or ""
    at = text.find(f'"{value}"', span.col - 1, max(span.end_col - 1, span.col))
    if at < 0:
        return span
    return Span(span.file, span.line, at + 1, span.line, at + 3 + len(value))


def _literal_codes(rs: Ruleset, rule: ir.Rule) -> list[LintFinding]:
    out = []
    for domain, mode, other in code_contexts(rule):
        if not isinstance(other, ir.Const):
            continue
        values = other.value if isinstance(other.value, tuple) else (other.value,)
        for v in values:
            if not isinstance(v, str):
                continue
            for p in check_code(v, domain, mode):
                out.append(LintFinding("L003", p.severity, p.message, span=_item_span(rs, other.span, v),
                                       value=v, rule=rule.code, hint=p.hint))
    return out


# ---- L004: never fires -----------------------------------------------------------------------------

_LOOKUPS = ("lookup", "pair", "requires")  # the statements that name a rule's knowledge table


def _never_fires(rs: Ruleset, rule: ir.Rule) -> LintFinding | None:
    def never(message, span, hint=None):
        return LintFinding("L004", ERROR, f"rule {rule.code} never fires: {message}", span=span or code_span(rs, rule),
                           rule=rule.code, hint=hint)

    if not rule.stages:
        return never("it runs at no stage", statement_span(rs, rule, "stages"),
                     "list at least one of 事前, 事中, 事后")
    if rule.effective_from and rule.effective_to and rule.effective_to < rule.effective_from:
        return never(f"its effective range ends ({rule.effective_to}) before it starts ({rule.effective_from})",
                     statement_span(rs, rule, "effective"))
    p = dedupe_conjuncts(normalize(fold_constants(planned(0, rule))))
    for what, folded, original in (("scope", p.scope, rule.scope), ("when", p.condition, rule.condition)):
        if isinstance(folded, ir.Const) and folded.value is False:
            return never(f"its '{what}' condition is always false", getattr(original, "span", None),
                         "the condition folds to false once its constants are computed")
    clash = _contradiction(rs, conjuncts(p.scope) if p.scope is not None else [], conjuncts(p.condition))
    if clash is not None:
        later, earlier = clash
        if earlier is None:
            msg = f"'{_snippet(rs, later)}' cannot hold together with the conditions before it on the same value"
        else:
            where = (f" (line {earlier.span.line})" if earlier.span is not None and later.span is not None
                     and earlier.span.line != later.span.line else "")
            msg = f"'{_snippet(rs, earlier)}'{where} and '{_snippet(rs, later)}' cannot both hold"
        return never(msg, later.span, "conditions joined by 'and' on the same field contradict each other")
    if rule.lookup is not None and rule.lookup.table in rs.tables:
        table = rs.tables[rule.lookup.table]
        if len(table) == 0:
            return never(f"its lookup table '{table.name}' has no rows", statement_span(rs, rule, *_LOOKUPS),
                         f"{table.path} is empty (or every row has a bad cell)")
        f_col, t_col = table.role_column("effective_from"), table.role_column("effective_to")
        if (f_col or t_col) and (rule.effective_from or rule.effective_to):
            window = (rule.effective_from, rule.effective_to)
            if not any(windows_overlap(window, (r.get(f_col) if f_col else None, r.get(t_col) if t_col else None))
                       for r in table.rows):
                return never(f"no row of table '{table.name}' is effective within the rule's window "
                             f"{rule.effective_from or '…'} to {rule.effective_to or '…'}",
                             statement_span(rs, rule, *_LOOKUPS))
    return None


def _inverted_effective_windows(rs: Ruleset) -> list[LintFinding]:
    """check refuses a rule whose effective range ends before it starts, so it has no IR: read the files
    that check reported a bad date in (only those, parsing is not free)."""
    files = sorted({d.span.file for d in rs.diagnostics if d.code == "bad_date" and d.span is not None})
    out = []
    for file in files:
        if not Path(file).is_file():
            continue
        for decl in parse_file(Path(file)).rules:
            ef = decl.attr("effective")
            if ef is None or len(ef.value) < 2:
                continue
            (start, _), (end, end_span) = ef.value[0], ef.value[1]
            if end < start:
                out.append(LintFinding("L004", ERROR, f"rule {decl.code} never fires: its effective range ends "
                                       f"({end}) before it starts ({start})", span=end_span, rule=decl.code,
                                       hint="swap the dates, or fix the year"))
    return out


_CMP = ("==", "!=", "<", "<=", ">", ">=")
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _value(v):
    return v.base_value if isinstance(v, Quantity) else v


def _atom(c):
    """(subject, (kind, value)) of a conjunct that constrains one expression by constants, else None."""
    if not isinstance(c, ir.Op):
        return None
    if c.op in ("is_null", "not_null") and not isinstance(c.args[0], ir.Const):
        return c.args[0], (c.op, None)
    if c.op == "not" and isinstance(c.args[0], ir.Op) and c.args[0].op == "startswith":
        left, right = c.args[0].args
        if isinstance(right, ir.Const) and not isinstance(left, ir.Const):
            return left, ("not startswith", right.value if isinstance(right.value, tuple) else (right.value,))
        return None
    if len(c.args) != 2:
        return None
    left, right = c.args
    if c.op in _CMP:
        if isinstance(right, ir.Const) and not isinstance(left, ir.Const):
            return left, (c.op, _value(right.value))
        if isinstance(left, ir.Const) and not isinstance(right, ir.Const):
            return right, (_FLIP[c.op], _value(left.value))
    elif c.op in ("in", "not in") and isinstance(right, ir.Const) and not isinstance(left, ir.Const):
        return left, (c.op, frozenset(_value(x) for x in right.value))
    elif c.op == "startswith" and isinstance(right, ir.Const) and not isinstance(left, ir.Const):
        return left, ("startswith", right.value if isinstance(right.value, tuple) else (right.value,))
    return None


def _satisfiable(atoms) -> bool:
    """Can one value meet every constraint? Unsure (mixed types) counts as yes: lint never guesses."""
    kinds = [k for k, _ in atoms]
    if "is_null" in kinds:
        # a missing value makes every comparison unknown: the conjunction is never true
        return all(k == "is_null" for k in kinds)
    eq, allowed, excluded = [], None, set()
    lo = hi = None  # (value, strict)
    prefix_sets, not_prefixes = [], []
    try:
        for kind, v in atoms:
            if kind == "==":
                eq.append(v)
            elif kind == "!=":
                excluded.add(v)
            elif kind == "in":
                allowed = set(v) if allowed is None else allowed & set(v)
            elif kind == "not in":
                excluded |= set(v)
            elif kind in ("<", "<="):
                if hi is None or v < hi[0] or (v == hi[0] and kind == "<"):
                    hi = (v, kind == "<")
            elif kind in (">", ">="):
                if lo is None or v > lo[0] or (v == lo[0] and kind == ">"):
                    lo = (v, kind == ">")
            elif kind == "startswith":
                prefix_sets.append(v)
            elif kind == "not startswith":
                not_prefixes.extend(v)

        def ok(x) -> bool:
            if x in excluded:
                return False
            if lo is not None and (x < lo[0] or (lo[1] and x == lo[0])):
                return False
            if hi is not None and (x > hi[0] or (hi[1] and x == hi[0])):
                return False
            if prefix_sets or not_prefixes:
                if not isinstance(x, str):
                    return True
                if not all(any(x.startswith(p) for p in ps) for ps in prefix_sets):
                    return False
                if any(x.startswith(p) for p in not_prefixes):
                    return False
            return True

        if eq:
            return all(e == eq[0] for e in eq) and ok(eq[0]) and (allowed is None or eq[0] in allowed)
        if allowed is not None:
            return any(ok(x) for x in allowed)
        if lo is not None and hi is not None:
            if lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1] or lo[0] in excluded)):
                return False
        candidates = {""}
        for ps in prefix_sets:
            candidates = {max(c, p, key=len) for c in candidates for p in ps if c.startswith(p) or p.startswith(c)}
            if not candidates:
                return False
        if prefix_sets and not_prefixes and all(any(c.startswith(n) for n in not_prefixes) for c in candidates):
            return False
    except TypeError:
        return True
    return True


def _contradiction(rs: Ruleset, scope: list, condition: list):
    """(conjunct, earlier conjunct or None) for the first conjunct that no value can meet together with
    the ones before it (source order) on the same expression; None when there is none."""
    items = []
    for c in scope + condition:
        a = _atom(c)
        if a is not None:
            items.append((c, a[0], a[1]))
    items.sort(key=lambda t: (t[0].span.file, t[0].span.line, t[0].span.col) if t[0].span else ("~", 0, 0))
    by_subject: dict = {}
    for c, subject, atom in items:
        try:
            seen = by_subject.setdefault(subject, [])
        except TypeError:  # an unhashable constant: not analysed
            continue
        if not _satisfiable([a for _, a in seen] + [atom]):
            earlier = next((e for e, a in seen if not _satisfiable([a, atom])), None)
            return c, earlier
        seen.append((c, atom))
    return None


# ---- L005 / L006: examples -------------------------------------------------------------------------


def _examples(rs: Ruleset, rule: ir.Rule) -> list[LintFinding]:
    if not rule.examples:
        return [LintFinding("L005", WARNING, f"rule {rule.code} has no examples", span=code_span(rs, rule),
                            rule=rule.code, hint="add an example that expects a flagged line and one that expects "
                                                 "none; `claimaudit test` runs them")]
    if not any(ex.expect_flagged for ex in rule.examples):
        n = len(rule.examples)
        return [LintFinding("L006", WARNING, f"none of rule {rule.code}'s {n} example(s) expects a flagged line",
                            span=code_span(rs, rule), rule=rule.code,
                            hint="add an example with 'expect flagged LABEL' so the case the rule exists for is "
                                 "tested")]
    return []

