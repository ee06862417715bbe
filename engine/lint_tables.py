"""Lint of knowledge tables (L001 duplicate rows, L002 contradicting rows, L003 bad codes) and the
national code formats, shared with the rule lint (codes written in rule conditions).

Code formats (domain.md §3; the generic-name part of drug codes as in the national catalogue):

    western drug        X + generic name (letter, 2 digits, 3 letters, 3 digits) + 13 letters/digits  23
    Chinese patent      Z + 19 letters/digits                                                        20
    decoction piece     T + 9 digits                                                                 10
    service item        15 digits                                                                    15
    consumable          C + 26 digits                                                                27
    diagnosis           ICD-10 医保版: letter, 2 digits [. 1-3 digits or x [x + 3 digits]]           3-11

A key matched by prefix may be any prefix of a well-formed code of its kind.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from claimaudit.dsl import ir
from claimaudit.dsl.knowledge import KnowledgeTable
from claimaudit.dsl.ruleset import Ruleset

from .lint import ERROR, WARNING, LintFinding, windows_overlap, display_path, is_full_width, visible
from .values import format_value

ITEM, DIAG = "item", "diagnosis"
PREFIX, EXACT = "prefix", "exact"
ITEM_FIELDS = ("med_list_codg",)  # national item codes (local codes, medins_list_codg, are not checked)
DIAG_FIELDS = ("dscg_maindiag_code", "diag_codes")

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")
_L, _D, _A = ("a letter", _UPPER), ("a digit", _DIGIT), ("a letter or digit", _UPPER | _DIGIT)


def _lit(ch: str):
    return (f"'{ch}'", frozenset(ch))


@dataclass(frozen=True)
class CodeKind:
    name: str
    positions: tuple  # per position: (description, allowed characters)
    lengths: frozenset  # lengths of a complete code
    describe: str


WESTERN_DRUG = CodeKind("western-drug code", (_lit("X"), _L, _D, _D, _L, _L, _L, _D, _D, _D) + (_A,) * 13,
                        frozenset({23}),
                        "X + generic name (letter, 2 digits, 3 letters, 3 digits, e.g. XB01AXA223) + 13 letters "
                        "or digits, 23 characters in all")
PATENT_MEDICINE = CodeKind("Chinese-patent-medicine code", (_lit("Z"),) + (_A,) * 19, frozenset({20}),
                           "Z + 19 letters or digits, 20 characters in all")
DECOCTION_PIECE = CodeKind("decoction-piece code", (_lit("T"),) + (_D,) * 9, frozenset({10}),
                           "T + 9 digits, 10 characters in all")
SERVICE_ITEM = CodeKind("service-item code", (_D,) * 15, frozenset({15}), "15 digits, e.g. 003310010140000")
CONSUMABLE = CodeKind("consumable code", (_lit("C"),) + (_D,) * 26, frozenset({27}),
                      "C + 26 digits, 27 characters in all")
_XD = ("a digit or x", _DIGIT | frozenset("xX"))
DIAGNOSIS = CodeKind("ICD-10 医保版 diagnosis code", (_L, _D, _D, _lit("."), _XD, _XD, _XD,
                                                     ("'x'", frozenset("xX")), _D, _D, _D),
                     frozenset({3, 5, 6, 7, 11}),
                     "a letter, 2 digits, then optionally '.', 1-3 digits or x and an extension x + 3 digits "
                     "(I63, I10.x00, A00.000x001)")
ITEM_KINDS = {"X": WESTERN_DRUG, "Z": PATENT_MEDICINE, "T": DECOCTION_PIECE, "C": CONSUMABLE}


@dataclass(frozen=True)
class CodeProblem:
    severity: str
    message: str
    position: int | None  # 0-based, into the value as written
    hint: str | None = None


def check_code(value: str, domain: str, mode: str) -> list[CodeProblem]:
    """Problems of one code as written (whitespace included). ``mode``: prefix (a key matched by prefix,
    a startswith/has_diag argument) or exact (a complete code)."""
    problems: list[CodeProblem] = []
    core = value.strip()
    if core != value:
        at = 0 if value[:1].isspace() else len(value.rstrip())
        problems.append(CodeProblem(WARNING, f"{visible(value)} has stray whitespace around it", at,
                                    "it is trimmed when the table is loaded, but other tools may not trim it"))
    if not core:
        return problems
    offset = len(value) - len(value.lstrip())
    for i, ch in enumerate(core):
        if ch.isspace():
            return problems + [CodeProblem(ERROR, f"{visible(core)} has a space inside it (position {i + 1})",
                                           offset + i, "a code with a space never matches")]
        if is_full_width(ch):
            ascii_ = unicodedata.normalize("NFKC", ch)
            return problems + [CodeProblem(ERROR, f"{visible(core)} has the full-width character '{ch}' at position "
                                                  f"{i + 1}", offset + i, f"write the ASCII '{ascii_}'")]
        if ord(ch) > 127:
            return problems + [CodeProblem(ERROR, f"{visible(core)} has the non-ASCII character '{ch}' at "
                                                  f"position {i + 1}", offset + i,
                                           "national codes are ASCII letters and digits")]
    if domain == DIAG:
        kind = DIAGNOSIS
    else:
        kind = ITEM_KINDS.get(core[0].upper(), SERVICE_ITEM if core[0] in _DIGIT else None)
        if kind is None:
            return problems + [CodeProblem(
                ERROR, f"{visible(core)} does not start like a national code: expected X (western drug), "
                       "Z (Chinese patent medicine), T (decoction piece), C (consumable) or a digit (service item)",
                offset)]
    what = f"{_a(kind.name)}{' prefix' if mode == PREFIX else ''}"
    for i, ch in enumerate(core):
        if i >= len(kind.positions):
            return problems + [CodeProblem(ERROR, f"{visible(core)} is too long for {_a(kind.name)}: {len(core)} "
                                                  "characters", offset + i, f"expected {kind.describe}")]
        desc, allowed = kind.positions[i]
        if ch not in allowed:
            if ch.upper() in allowed and kind is DIAGNOSIS:  # has_diag ignores case: untidy, not wrong
                problems.append(CodeProblem(WARNING, f"{visible(core)} has the lower-case '{ch}' at position "
                                                     f"{i + 1}", offset + i, "diagnosis codes are upper case"))
                continue
            if ch.upper() in allowed:
                why = f"lower-case '{ch}' at position {i + 1} (codes are upper case)"
            else:
                why = f"'{ch}' at position {i + 1}, expected {desc}"
            return problems + [CodeProblem(ERROR, f"{visible(core)} is not {what}: {why}", offset + i,
                                           f"expected {kind.describe}")]
    if mode == EXACT and len(core) not in kind.lengths:
        n = " or ".join(str(x) for x in sorted(kind.lengths))
        return problems + [CodeProblem(ERROR, f"{visible(core)} is not a complete {kind.name}: {len(core)} "
                                              f"characters, expected {n}", offset + len(core) - 1,
                                       f"expected {kind.describe}; a code matched exactly must be whole")]
    return problems


def _a(name: str) -> str:
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"


# ---- which table columns hold codes ------------------------------------------------------------------


def _field_domain(expr) -> str | None:
    if isinstance(expr, ir.Field):
        if expr.name in ITEM_FIELDS:
            return ITEM
        if expr.name in DIAG_FIELDS:
            return DIAG
    return None


def code_contexts(rule: ir.Rule):
    """(domain, mode, other side) for every comparison of a code field with something in the rule:
    ``med_list_codg startswith X``, ``== X``, ``in X``, ``has_diag(X)``, ``X in diag_codes`` …"""
    window = getattr(rule, "window", None)
    for expr in (rule.scope, rule.condition, getattr(window, "where", None)):
        if expr is None:
            continue
        for node in ir.walk(expr):
            if isinstance(node, ir.Call) and node.func == "has_diag" and node.args:
                yield DIAG, PREFIX, node.args[0]
            elif isinstance(node, ir.Op) and len(node.args) == 2:
                left, right = node.args
                op = node.op
                if op in ("startswith", "==", "!=", "in", "not in") and _field_domain(left):
                    yield _field_domain(left), PREFIX if op == "startswith" else EXACT, right
                elif op in ("==", "!=") and _field_domain(right):
                    yield _field_domain(right), EXACT, left
                elif op in ("in", "not in") and isinstance(right, ir.Field) and right.name == "diag_codes":
                    yield DIAG, EXACT, left


def partner_of(table: KnowledgeTable) -> tuple[str | None, str | None]:
    """The B-side column of a pair / requires table and its match kind (None for plain tables)."""
    return getattr(table, "partner", None), getattr(table, "partner_match", None)


def code_columns(rs: Ruleset) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (domain, mode) for the columns that hold codes: the key (and partner) column of
    a table looked up by a code field, and columns rules compare with code fields. Prefix wins over
    exact when rules disagree (lenient). Tables no rule looks up are guessed from their values."""
    out: dict[tuple[str, str], tuple[str, str]] = {}

    def put(key, domain, mode):
        old = out.get(key)
        out[key] = (domain, PREFIX if mode == PREFIX or (old and old[1] == PREFIX) else EXACT)

    used = set()
    for rule in rs.rules:
        if rule.lookup is None or rule.lookup.table not in rs.tables:
            continue
        table = rs.tables[rule.lookup.table]
        used.add(table.name)
        domain = _field_domain(rule.lookup.key)
        if domain:
            put((table.name, table.key), domain, PREFIX if table.match == "prefix" else EXACT)
            partner, partner_match = partner_of(table)
            if partner:
                put((table.name, partner), domain, PREFIX if partner_match == "prefix" else EXACT)
        for domain, mode, other in code_contexts(rule):
            if isinstance(other, ir.KnowledgeField):
                put((table.name, other.column), domain, mode)
    for table in rs.tables.values():
        if table.name in used:
            continue
        partner, partner_match = partner_of(table)
        for col in table.columns.values():
            if col.type not in ("text", "list"):
                continue
            if col.name in (table.key, partner):
                match = table.match if col.name == table.key else partner_match
                domain = _guess_domain(table, col.name)
                if domain:
                    put((table.name, col.name), domain, PREFIX if match == "prefix" or domain == DIAG else EXACT)
            elif any(w in col.name.lower() for w in ("diag", "dise", "icd")) and _guess_domain(table, col.name) == DIAG:
                put((table.name, col.name), DIAG, PREFIX)
    return out


def _guess_domain(table: KnowledgeTable, column: str) -> str | None:
    """Item codes or diagnoses, when most values of the column look like one of them (else None)."""
    values = []
    for row in table.rows:
        v = row.get(column)
        values.extend(str(x) for x in (v if isinstance(v, tuple) else (v,)) if x)
    if not values:
        return None
    icd = sum(1 for v in values if re.match(r"^[A-Z][0-9]{2}(\.|$)", v)) / len(values)
    item = sum(1 for v in values if not any(p.severity == ERROR for p in check_code(v, ITEM, PREFIX))) / len(values)
    if item >= 0.5 and item > icd:
        return ITEM
    if icd >= 0.5:
        return DIAG
    return None


# ---- raw cells ---------------------------------------------------------------------------------------

_LIST_SEPARATORS = (";", "；", "|", ",", "，", "、")  # as dsl/knowledge.py splits list cells


def raw_rows(path: str) -> list[tuple[int, dict]]:
    """(file row, raw cells) as written: the loader trims cells, lint needs to see what it trims.
    Row numbers follow the loader's (CSV: header is row 1; Parquet: first row is 1)."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq
            return list(enumerate(pq.read_table(p).to_pylist(), start=1))
        with p.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [h.strip() for h in (reader.fieldnames or [])]
            return list(enumerate(reader, start=2))
    except Exception:  # unreadable: check has already said why
        return []


def _split_items(cell: str) -> list[tuple[str, int]]:
    """List cell -> (item as written, start offset) pairs; whitespace around items is not an error."""
    items, start = [], 0
    for i, ch in enumerate(cell + ";"):
        if ch in _LIST_SEPARATORS or i == len(cell):
            piece = cell[start:i]
            lead = len(piece) - len(piece.lstrip())
            if piece.strip():
                items.append((piece.strip(), start + lead))
            start = i + 1
    return items


# ---- the table lint ----------------------------------------------------------------------------------


def lint_tables(rs: Ruleset) -> list[LintFinding]:
    out: list[LintFinding] = []
    codes = code_columns(rs)
    constraint_cols = _constraint_columns(rs)
    unordered = _unordered_tables(rs)
    for table in rs.tables.values():
        out.extend(_lint_cells(table, codes))
        out.extend(_lint_rows(table, constraint_cols.get(table.name), table.name in unordered))
    return out


def _lint_cells(table: KnowledgeTable, codes) -> list[LintFinding]:
    out = []
    file = display_path(table.path)
    cols = [(c, codes.get((table.name, c.name))) for c in table.columns.values()]
    cols = [(c, ctx) for c, ctx in cols if ctx is not None or c.name == table.key]
    for file_row, raw in raw_rows(table.path):
        for col, ctx in cols:
            cell = raw.get(col.name)
            cell = None if cell is None else str(cell)
            if col.name == table.key and (cell is None or not cell.strip()):
                out.append(LintFinding("L003", ERROR, f"row {file_row} has an empty key '{col.name}': it never matches "
                                       "a line", file=file, row=file_row, column=col.name, table=table.name))
                continue
            if ctx is None or cell is None:
                continue
            domain, mode = ctx
            items = _split_items(cell) if col.type == "list" else [(cell, 0)]
            for item, start in items:
                for p in check_code(item, domain, mode):
                    out.append(LintFinding("L003", p.severity, f"column '{col.name}': {p.message}", file=file,
                                           row=file_row, column=col.name, value=cell,
                                           position=None if p.position is None else start + p.position,
                                           table=table.name, hint=p.hint))
    return out


def _constraint_columns(rs: Ruleset) -> dict[str, set[str]]:
    """Per table, the columns rules decide with (scope, when, amount, and a cross-line window's
    condition, length and grouping column): the knowledge point's constraint."""
    out: dict[str, set[str]] = {}
    for rule in rs.rules:
        if rule.lookup is None:
            continue
        cols = out.setdefault(rule.lookup.table, set())
        window = getattr(rule, "window", None)
        for expr in (rule.scope, rule.condition, rule.amount, getattr(window, "where", None),
                     getattr(window, "rolling_days", None)):
            if expr is not None:
                cols.update(n.column for n in ir.walk(expr) if isinstance(n, ir.KnowledgeField))
        same = getattr(window, "same", None)
        if same and same[0] == "knowledge" and len(same) > 1:
            cols.add(same[1])
    return out


def _unordered_tables(rs: Ruleset) -> set[str]:
    """Pair tables a rule matches on either side: A×B and B×A are the same pair."""
    return {r.lookup.table for r in rs.rules if r.lookup is not None and getattr(r.lookup, "side", "key") == "either"}


def _swapped_columns(table: KnowledgeTable, key: str, partner: str) -> list[tuple[str, str]]:
    """Column pairs that follow the key / partner sides by name (name_a / name_b, herb_a / herb_b …)."""
    out = []
    for a in table.columns:
        for sa, sb in (("_a", "_b"), ("a_", "b_"), ("_1", "_2")):
            b = a.replace(sa, sb, 1) if sa in a else None
            if b and b != a and b in table.columns and a not in (key, partner):
                out += [(a, b), (b, a)]
    return out


def _norm(v):
    if isinstance(v, (tuple, list)):
        return frozenset(v)  # list cells are sets: "310;390" and "390;310" say the same
    return v


def _show(v) -> str:
    if v is None:
        return "(empty)"
    if isinstance(v, frozenset):
        v = tuple(sorted(v))
    if isinstance(v, tuple):
        return ";".join(str(x) for x in v)
    return format_value(v)


def _window(table: KnowledgeTable, row: dict):
    f, t = table.role_column("effective_from"), table.role_column("effective_to")
    return (row.get(f) if f else None), (row.get(t) if t else None)


# Columns of imported tables (kb import) that say which restriction a row states: rows differing in
# them are different knowledge points even with the same code.
KIND_COLUMNS = ("restriction", "per", "scope")


def _lint_rows(table: KnowledgeTable, constraint: set[str] | None, unordered: bool = False) -> list[LintFinding]:
    """Rows are the same knowledge point when their key (and partner, for pair tables; in either order
    when rules match the pair unordered) is the same; for prefix keys, a row whose key starts with
    another row's key also applies to the same codes."""
    key = table.key
    partner, _ = partner_of(table)
    skip_roles = ("id", "source")
    identity = (key, partner)
    compare = [c for c in table.columns.values() if c.name not in identity and c.role not in skip_roles]
    if constraint is None:  # no rule looks the table up: every plain column is part of the point
        constraint = {c.name for c in compare if c.role is None}
    constraint_cols = [c.name for c in compare if c.name in constraint and c.name not in identity]
    file = display_path(table.path)
    rows = [(n, {k: _norm(v) for k, v in r.items()}) for n, r in zip(table.row_numbers, table.rows)]
    by_key: dict[tuple, list] = {}  # (key, partner) -> rows, for prefix nesting
    groups: dict[tuple, list] = {}  # the same pair
    for n, r in rows:
        if r.get(key) is not None:
            kp = (str(r[key]), r.get(partner) if partner else None)
            by_key.setdefault(kp, []).append((n, r))
            same = tuple(sorted(kp)) if unordered and isinstance(kp[1], str) else kp
            groups.setdefault(same, []).append((n, r))
    what = f"{key}" + (f" and {partner}" if partner else "")

    def ident(r) -> str:
        return str(r[key]) + (f" / {_show(r.get(partner))}" if partner else "")

    out: list[LintFinding] = []
    reported: set[int] = set()

    def compare_pair(a, b, nested: bool):
        (na, ra), (nb, rb) = a, b
        if any(ra.get(c) != rb.get(c) for c in KIND_COLUMNS if c in table.columns):
            return  # e.g. a sex and an age restriction of one drug: two knowledge points, not a conflict
        if nb in reported or not windows_overlap(_window(table, ra), _window(table, rb)):
            return
        differ_all = [c.name for c in compare if ra.get(c.name) != rb.get(c.name)]
        differ_constraint = [c for c in constraint_cols if ra.get(c) != rb.get(c)]
        ka, kb = str(ra[key]), str(rb[key])
        swapped = partner is not None and not nested and ka != kb
        if swapped:  # an unordered pair written both ways round: the columns are swapped too
            ra = {**ra, key: ra[partner], partner: ra[key]}
            ra.update({a: ra.get(b) for a, b in _swapped_columns(table, key, partner)})
            differ_all = [c.name for c in compare if ra.get(c.name) != rb.get(c.name)]
            differ_constraint = [c for c in constraint_cols if ra.get(c) != rb.get(c)]
        turned = " (the same pair written the other way round; rules match it either way)" if swapped else ""
        if not differ_all and not nested:
            ignored = [c.name for c in table.columns.values() if c.role in skip_roles]
            out.append(LintFinding(
                "L001", ERROR, f"row {nb} duplicates row {na}: same {what} {ident(ra)} and the same value in every "
                f"column" + (f" but {', '.join(ignored)}" if ignored else "") + turned,
                file=file, row=nb, column=key, other_row=na, table=table.name,
                hint="a line matching both gets two findings (and its amount counted twice); delete one row"))
        elif not differ_constraint:
            where = (f"same {what} {ident(ra)}" if not nested else f"{key} {kb} starts with row {na}'s {ka}")
            same = f"same {', '.join(constraint_cols)}" if constraint_cols else "no constraint column differs"
            out.append(LintFinding(
                "L001", WARNING, f"row {nb} repeats the knowledge point of row {na}: {where}, {same}"
                + (f" (they differ only in {', '.join(differ_all)})" if differ_all else "") + turned,
                file=file, row=nb, column=key, other_row=na, table=table.name,
                hint="a line matching both rows gets two findings; keep one row"))
        else:
            diffs = "; ".join(f"{c} {_show(rb.get(c))} here, {_show(ra.get(c))} in row {na}" for c in differ_constraint)
            if nested:
                msg = (f"row {nb} contradicts row {na}: codes starting with {kb} match both keys ({kb} and {ka}) "
                       f"with different {', '.join(differ_constraint)}: {diffs}")
                hint = ("both rows apply to those codes, so the stricter one always decides; give the shorter key "
                        "only codes the longer one does not cover, or make the values agree")
            else:
                msg = (f"row {nb} contradicts row {na}: same {what} {ident(ra)} with different "
                       f"{', '.join(differ_constraint)}: {diffs}{turned}")
                hint = "both rows apply, so the stricter one always decides; keep the right one"
            out.append(LintFinding("L002", ERROR, msg, file=file, row=nb,
                                   column=differ_constraint[0], other_row=na, table=table.name, hint=hint))
        reported.add(nb)

    for group in groups.values():
        for j in range(1, len(group)):
            for i in range(j):
                compare_pair(group[i], group[j], nested=False)
    if table.match == "prefix":
        lengths = sorted({len(k) for k, _ in by_key})
        for (k, p), group in by_key.items():
            for n in lengths:
                if n >= len(k):
                    break
                for a in by_key.get((k[:n], p), ()):
                    for b in group:
                        compare_pair(a, b, nested=True)
    return out
