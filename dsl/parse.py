"""Parse rule text into the AST (stage 1 of the pipeline: text -> parse tree -> AST).

Syntax errors become coded diagnostics with a friendly message instead of a parser-state dump.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, span_of_token

GRAMMAR = Path(__file__).with_name("grammar.lark")

# How terminals read in an error message.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": 'a quoted string ("…")',
    "NUMBER": "a number",
    "SIGNED_NUMBER": "a number",
    "DATE": "a date (YYYY-MM-DD)",
    "DATETIME": "a date-time (YYYY-MM-DDThh:mm)",
    "COMP_OP": "a comparison (== != < <= > >=)",
    "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "LPAR": "'('", "RPAR": "')'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "DOT": "'.'", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'",
}


class BadDate(Exception):
    def __init__(self, token, why):
        super().__init__(why)
        self.token = token
        self.why = why


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name.isupper():  # keyword terminals are named after the keyword, e.g. RULE
        return f"'{name.lower()}'"
    return name


def _unescape(raw: str) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    return body.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


@v_args(inline=True)
class _Builder(Transformer):
    """Parse tree -> AST. Spans come from tokens so columns are character offsets."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _sp(self, tok) -> ast.Span:
        return span_of_token(self.file, tok)

    def _join(self, a: ast.Span, b: ast.Span) -> ast.Span:
        return ast.Span(self.file, a.line, a.col, b.end_line, b.end_col)

    # --- literals
    def string_lit(self, tok):
        return ast.Literal(_unescape(str(tok)), "text", self._sp(tok))

    def number_lit(self, tok):
        return ast.Literal(_number(tok), "number", self._sp(tok))

    def signed_number(self, tok):
        return ast.Literal(_number(tok), "number", self._sp(tok))

    def quantity_lit(self, num, unit):
        return ast.QuantityLit(float(num), str(unit), self._join(self._sp(num), self._sp(unit)), self._sp(unit))

    def date_lit(self, tok):
        return ast.Literal(_date(tok), "date", self._sp(tok))

    def datetime_lit(self, tok):
        text = str(tok)
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as e:
            raise BadDate(tok, f"'{text}' is not a valid date-time: {e}") from None
        return ast.Literal(value, "datetime", self._sp(tok))

    @v_args(inline=False, meta=True)
    def true_lit(self, meta, _):
        return ast.Literal(True, "bool", self._meta(meta))

    @v_args(inline=False, meta=True)
    def false_lit(self, meta, _):
        return ast.Literal(False, "bool", self._meta(meta))

    @v_args(inline=False, meta=True)
    def null_lit(self, meta, _):
        return ast.Literal(None, "null", self._meta(meta))

    @v_args(inline=False, meta=True)
    def list_lit(self, meta, items):
        return ast.Literal(tuple(i.value for i in items if i is not None), "list", self._meta(meta))

    def _meta(self, meta) -> ast.Span:
        return ast.Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    # --- expressions
    def name_ref(self, tok):
        return ast.Name(str(tok), self._sp(tok))

    def qualified_ref(self, q, n):
        return ast.Qualified(str(q), str(n), self._join(self._sp(q), self._sp(n)), self._sp(n))

    @v_args(inline=False, meta=True)
    def call(self, meta, children):
        func, *args = children
        return ast.Call(str(func), tuple(a for a in args if a is not None), self._meta(meta))

    @v_args(inline=False, meta=True)
    def set_lit(self, meta, items):
        return ast.SetLit(tuple(i for i in items if i is not None), self._meta(meta))

    def _bin(op):
        def build(self, left, right):
            return ast.Binary(op, left, right, self._join(left.span, right.span))
        return build

    add, sub, mul, div = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    in_op, not_in_op, startswith_op = _bin("in"), _bin("not in"), _bin("startswith")

    def compare(self, left, op, right):
        return ast.Binary(str(op), left, right, self._join(left.span, right.span))

    @v_args(inline=False)
    def and_expr(self, items):
        return functools.reduce(lambda a, b: ast.Binary("and", a, b, self._join(a.span, b.span)), items)

    @v_args(inline=False)
    def or_expr(self, items):
        return functools.reduce(lambda a, b: ast.Binary("or", a, b, self._join(a.span, b.span)), items)

    @v_args(inline=False, meta=True)
    def not_op(self, meta, items):
        return ast.Unary("not", items[0], self._meta(meta))

    @v_args(inline=False, meta=True)
    def neg(self, meta, items):
        return ast.Unary("neg", items[0], self._meta(meta))

    # --- ruleset and tables
    @v_args(inline=False, meta=True)
    def ruleset(self, meta, children):
        name, *metas = children
        return ast.RulesetDecl(_unescape(str(name)), tuple(metas), self._meta(meta))

    def meta(self, key, value):
        return ast.Meta(str(key), value.value, self._join(self._sp(key), value.span))

    def type_spec(self, base, arg=None):
        end = arg if arg is not None else base
        return ast.TypeSpec(str(base), str(arg) if arg is not None else None, self._join(self._sp(base), self._sp(end)))

    def role(self, tok):
        return tok

    def key_column(self, name, type_spec, match):
        return ast.ColumnDecl(str(name), type_spec, None, True, str(match), self._sp(name), match_span=self._sp(match))

    def partner_column(self, name, type_spec, match):
        return ast.ColumnDecl(str(name), type_spec, None, False, str(match), self._sp(name), match_span=self._sp(match),
                              is_partner=True)

    def column(self, name, type_spec, role=None):
        return ast.ColumnDecl(str(name), type_spec, str(role) if role is not None else None, False, None,
                              self._sp(name), role_span=self._sp(role) if role is not None else None)

    @v_args(inline=False, meta=True)
    def table(self, meta, children):
        name, path, *cols = children
        return ast.TableDecl(str(name), _unescape(str(path)), tuple(cols), self._sp(name), self._sp(path))

    # --- rules
    def rule_code(self, tok):
        return tok

    @v_args(inline=False, meta=True)
    def rule(self, meta, children):
        code, name, *stmts = children
        attrs = tuple(s for s in stmts if isinstance(s, (ast.Attr,)))
        examples = tuple(s for s in stmts if isinstance(s, ast.Example))
        code_text = _unescape(str(code)) if code.type == "STRING" else str(code)
        return ast.RuleDecl(code_text, _unescape(str(name)), attrs, examples, self._meta(meta), self._sp(code))

    def _attr(keyword, convert):
        @v_args(inline=False, meta=True)
        def build(self, meta, children):
            return ast.Attr(keyword, convert(self, children), self._meta(meta))
        return build

    def _string_value(self, ch):
        return (_unescape(str(ch[0])), self._sp(ch[0]))

    def _name_value(self, ch):
        return (str(ch[0]), self._sp(ch[0]))

    class_stmt = _attr("class", _string_value)
    version_stmt = _attr("version", _string_value)
    message_stmt = _attr("message", lambda self, ch: (str(ch[0]), self._sp(ch[0])))  # raw, for placeholder spans
    result_stmt = _attr("result", _name_value)
    severity_stmt = _attr("severity", _name_value)
    stages_stmt = _attr("stages", lambda self, ch: tuple((str(t), self._sp(t)) for t in ch))
    effective_stmt = _attr("effective", lambda self, ch: tuple((_date(t), self._sp(t)) for t in ch))
    scope_stmt = _attr("scope", lambda self, ch: ch[0])
    when_stmt = _attr("when", lambda self, ch: ch[0])
    amount_stmt = _attr("amount", lambda self, ch: ch[0])
    basis_stmt = _attr("basis", lambda self, ch: tuple(_unescape(str(t)) for t in ch))

    @v_args(inline=False, meta=True)
    def lookup_stmt(self, meta, ch):
        binding, table, key = ch
        lookup = ast.Lookup(str(binding), str(table), key, self._meta(meta), self._sp(table))
        return ast.Attr("lookup", lookup, self._meta(meta))

    # --- cross-line constructs
    @v_args(inline=False, meta=True)
    def window_scope(self, meta, ch):
        name, rolling = ch
        return ast.WindowScope(str(name), rolling, self._meta(meta))

    @v_args(inline=False, meta=True)
    def same_rows(self, meta, ch):
        first, second = ch
        same = (str(first),) if second is None else (str(first), str(second))
        return ("same", same, self._meta(meta))

    @v_args(inline=False, meta=True)
    def all_rows(self, meta, ch):
        return ("lines", None, self._meta(meta))

    @v_args(inline=False, meta=True)
    def window_stmt(self, meta, ch):
        binding, whole, rows, scope, where = ch
        node = ast.CrossLine("window", str(binding), scope, self._meta(meta), whole=whole is not None, same=rows[1],
                             where=where, same_span=rows[2])
        return ast.Attr("window", node, self._meta(meta))

    @v_args(inline=False, meta=True)
    def pair_stmt(self, meta, ch):
        binding, table, key, scope, unordered = ch
        node = ast.CrossLine("pair", str(binding), scope, self._meta(meta), table=str(table), key=key,
                             unordered=unordered is not None, table_span=self._sp(table))
        return ast.Attr("window", node, self._meta(meta))

    @v_args(inline=False, meta=True)
    def requires_stmt(self, meta, ch):
        binding, table, key, scope = ch
        node = ast.CrossLine("requires", str(binding), scope, self._meta(meta), table=str(table), key=key,
                             table_span=self._sp(table))
        return ast.Attr("window", node, self._meta(meta))

    # --- examples
    def field_value(self, name, value):
        return ast.FieldValue(str(name), value, self._join(self._sp(name), value.span))

    @v_args(inline=False)
    def record(self, items):
        return tuple(i for i in items if i is not None)

    def patient_rec(self, rec):
        return ("patient", rec)

    def encounter_rec(self, label, rec):
        if label is None:
            return ("encounter", rec)
        return ("encounter_named", (str(label), rec, self._sp(label)))

    @v_args(inline=False, meta=True)
    def line_rec(self, meta, ch):
        label, at, rec = ch
        return ("line", (str(label), rec, self._sp(label), str(at) if at is not None else None))

    def amount_check(self, value):
        return value

    @v_args(inline=False, meta=True)
    def expect_none(self, meta, _):
        return ast.Expectation("none", (), None, self._meta(meta))

    @v_args(inline=False, meta=True)
    def expect_flagged(self, meta, ch):
        amount = ch[-1].value if ch and isinstance(ch[-1], ast.Literal) else None
        labels = tuple(str(t) for t in ch if isinstance(t, Token))
        return ast.Expectation("flagged", labels, amount, self._meta(meta))

    @v_args(inline=False, meta=True)
    def expect_insufficient(self, meta, ch):
        return ast.Expectation("insufficient", tuple(str(t) for t in ch), None, self._meta(meta))

    @v_args(inline=False, meta=True)
    def example(self, meta, ch):
        name, *stmts = ch
        patient, encounter, lines, expects, named = (), (), [], [], []
        for s in stmts:
            if isinstance(s, ast.Expectation):
                expects.append(s)
            elif s[0] == "patient":
                patient += s[1]
            elif s[0] == "encounter":
                encounter += s[1]
            elif s[0] == "encounter_named":
                named.append(s[1])
            else:
                lines.append(s[1])
        return ast.Example(_unescape(str(name)), patient, encounter, tuple(lines), tuple(expects), self._meta(meta),
                           tuple(named))

    @v_args(inline=False)
    def start(self, items):
        return items


def _number(tok) -> float | int:
    text = str(tok)
    return float(text) if "." in text else int(text)


def _date(tok) -> dt.date:
    text = str(tok)
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise BadDate(tok, f"'{text}' is not a calendar date: {e}") from None


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


def parse_text(text: str, file: str) -> ast.RuleFile:
    """Parse one rule file. Never raises for user mistakes: problems come back as diagnostics."""
    with no_cyclic_gc():
        return _parse_text(text, file)


@contextlib.contextmanager
def no_cyclic_gc():
    """Parsing builds millions of small acyclic objects; the cyclic collector would rescan all of them
    again and again (it made parse time grow faster than the file). Reference counting still frees.

    The batch engine pauses it the same way while it renders an audit's findings and makes their table:
    objects that live on, which a 10M-line cross-line audit walked in 10 + 2 full collections (5.3 s +
    4.3 s, benches/RESULTS.md). Cyclic garbage made meanwhile waits for the next full collection. At the
    end the objects made are moved to the oldest generation (a freeze and unfreeze, unless the process keeps
    frozen objects of its own): left young, the first collection after the stage walked them all (2.8 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _parse_text(text: str, file: str) -> ast.RuleFile:
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark (Windows editors) is not part of the text
        text = text[1:]
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        return ast.RuleFile(file, text, (), (), (), (_syntax_diagnostic(e, text, file),))
    try:
        items = _Builder(file).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, BadDate):
            tok = e.orig_exc.token
            diag = Diagnostic("bad_date", e.orig_exc.why, span_of_token(file, tok))
            return ast.RuleFile(file, text, (), (), (), (diag,))
        raise
    return ast.RuleFile(
        file, text,
        tuple(i for i in items if isinstance(i, ast.RulesetDecl)),
        tuple(i for i in items if isinstance(i, ast.TableDecl)),
        tuple(i for i in items if isinstance(i, ast.RuleDecl)),
    )


def parse_file(path: Path) -> ast.RuleFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        span = ast.Span(str(path), 1, 1, 1, 2)
        return ast.RuleFile(str(path), "", (), (), (),
                            (Diagnostic("syntax_error", f"file is not UTF-8 text ({e.reason} at byte {e.start})", span),))
    return parse_text(text, str(path))


def _syntax_diagnostic(e: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line = getattr(e, "line", None) or 1
    col = getattr(e, "column", None) or 1
    # Lark counts lines at "\n" only; str.splitlines() also splits at \f, \v, \x1c-\x1e, \x85, \u2028 …
    src_lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        while len(src_lines) > 1 and not src_lines[-1].strip():
            src_lines.pop()
        line, col = len(src_lines), len(src_lines[-1]) + 1
        expected = _expected_words(e.expected)
        return Diagnostic("syntax_error", f"the file ends too early; expected {expected}",
                          ast.Span(file, line, col, line, col + 1),
                          hint="a '{' is probably not closed" if "RBRACE" in e.expected else None)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        what = f"'{tok}'" if tok.type not in ("STRING",) else "a string"
        span = span_of_token(file, tok)
        msg = f"unexpected {what}; expected {_expected_words(e.expected)}"
        return Diagnostic("syntax_error", msg, span, hint=_hint_for(tok, e.expected))
    if isinstance(e, UnexpectedCharacters):
        src = src_lines[line - 1] if 0 < line <= len(src_lines) else ""
        ch = src[col - 1] if 0 < col <= len(src) else "?"
        hint = "strings use straight double quotes \"…\"" if ch in "“”'‘’「」" else None
        if ch == '"':
            hint = "this string is not closed on its line; a string cannot span lines"
        if ch == "=":
            hint = "comparison is written '=='"
        return Diagnostic("syntax_error", f"unexpected character '{ch}'", ast.Span(file, line, col, line, col + 1),
                          hint=hint)
    if isinstance(e, UnexpectedEOF):
        return Diagnostic("syntax_error", "the file ends too early", ast.Span(file, line, col, line, col + 1))
    return Diagnostic("syntax_error", str(e).splitlines()[0], ast.Span(file, line, col, line, col + 1))


def _expected_words(expected) -> str:
    words = sorted({_describe_terminal(t) for t in expected if not t.startswith("__")})
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", ".join(words) or "something else"


def _hint_for(tok, expected) -> str | None:
    if tok.type == "EQUAL" or str(tok) == "=":
        return "comparison is written '=='"
    if tok.type == "NAME" and "RBRACE" in expected:
        return f"'{tok}' is not a statement keyword here; a '}}' may be missing before it"
    return None
