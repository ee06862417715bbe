"""Check a parsed rule and lower it to IR (stage 2-3): resolve names against the claim schema,
lookup bindings and knowledge columns; check types and units; collect every diagnostic.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re

from . import ast, ir
from .diagnostics import Diagnostic
from .knowledge import KnowledgeTable
from .schema import CLAIM_FIELDS, DERIVED_FIELDS, FUNCTIONS, lookup_field, split_list
from .units import UNITS, dimension_name, make_quantity, unit_of

RESULT_TYPES = {"明确": "明确", "definite": "明确", "可疑": "可疑", "suspicious": "可疑"}
SEVERITIES = {"block": "block", "拦截": "block", "禁止": "block", "warn": "warn", "警示": "warn", "预警": "warn",
              "警告": "warn", "inform": "inform", "提醒": "inform", "提示": "inform"}
STAGES = {"事前": "事前", "pre": "事前", "事中": "事中", "during": "事中", "事后": "事后", "post": "事后"}
ALL_STAGES = frozenset(("事前", "事中", "事后"))
SPECIAL_PLACEHOLDERS = {"amount": "number", "rule_code": "text", "rule_name": "text", "knowledge_text": "text",
                        "knowledge_source": "text", "involved": "text"}
_SINGLE = ("class", "version", "result", "severity", "stages", "effective", "scope", "lookup", "when", "message",
           "amount", "basis", "window")
# The framework's own time words (domain.md) are accepted beside the English names.
WINDOW_SCOPES = {
    "encounter": "encounter", "当次就诊": "encounter", "当次门诊": "encounter", "当次住院": "encounter",
    "prescription": "prescription", "处方": "prescription",
    "day": "day", "自然日": "day", "单日": "day", "同天": "day", "同日": "day",
    "month": "month", "自然月": "month", "单月": "month", "quarter": "quarter", "季度": "quarter",
    "year": "year", "自然年": "year", "insurance_year": "insurance_year", "医保年度": "insurance_year",
    "patient": "patient", "患者": "patient", "institution": "institution", "同机构": "institution",
}
WINDOW_VALUES = ("count", "quantity", "amount", "days", "span_days", "supply_days", "overlap_days", "codes",
                 "encounters")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


class _Ctx:
    def __init__(self, tables: dict[str, KnowledgeTable]):
        self.tables = tables
        self.binding: str | None = None
        self.table: KnowledgeTable | None = None
        self.window_binding: str | None = None
        self.settings: dict = {}  # a local profile's values for setting("name", default)
        self.settings_used: dict = {}  # name -> (default, span)
        self.diags: list[Diagnostic] = []

    def error(self, code, message, span, hint=None):
        self.diags.append(Diagnostic(code, message, span, hint=hint))


def _suggest(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f"did you mean '{close[0]}'?" if close else None


# ---- types -----------------------------------------------------------------------------


def _is_quantity(t: str) -> bool:
    return t.startswith("quantity")


def _dim(t: str) -> str | None:
    return t.split(":", 1)[1] if t.startswith("quantity:") else None


def _comparable(a: str, b: str) -> bool:
    if "null" in (a, b):
        return True
    groups = ({"number"}, {"text"}, {"date", "datetime"}, {"bool"})
    if any(a in g and b in g for g in groups):
        return True
    return _is_quantity(a) and _is_quantity(b)


def _column_type(col) -> str:
    if col.type == "quantity":
        return f"quantity:{unit_of(col.unit)[0]}" if col.unit else "quantity"
    return col.type


# ---- expressions ---------------------------------------------------------------------------


def lower_expr(node, ctx: _Ctx):
    """AST expression -> IR expression. Returns None (after recording a diagnostic) when it cannot."""
    if isinstance(node, ast.Literal):
        return ir.Const(node.value, node.kind, node.span)
    if isinstance(node, ast.QuantityLit):
        if unit_of(node.unit) is None:
            ctx.error("unknown_unit", f"unknown unit '{node.unit}'", node.unit_span,
                      hint=_suggest(node.unit, UNITS))
            return None
        q = make_quantity(node.number, node.unit)
        return ir.Const(q, f"quantity:{q.dimension}", node.span)
    if isinstance(node, ast.Name):
        return _lower_name(node, ctx)
    if isinstance(node, ast.Qualified):
        return _lower_qualified(node, ctx)
    if isinstance(node, ast.SetLit):
        return _lower_set(node, ctx)
    if isinstance(node, ast.Call):
        return _lower_call(node, ctx)
    if isinstance(node, ast.Unary):
        arg = lower_expr(node.operand, ctx)
        if arg is None:
            return None
        if node.op == "not":
            if arg.type not in ("bool", "null"):
                ctx.error("type_mismatch", f"'not' needs a condition, got a {arg.type} value", node.span)
                return None
            return ir.Op("not", (arg,), "bool", node.span)
        if arg.type != "number" and not _is_quantity(arg.type):
            ctx.error("type_mismatch", f"cannot negate a {arg.type} value", node.span)
            return None
        return ir.Op("neg", (arg,), arg.type, node.span)
    if isinstance(node, ast.Binary):
        return _lower_binary(node, ctx)
    raise TypeError(f"unexpected node {node!r}")


def _lower_name(node: ast.Name, ctx: _Ctx):
    info = lookup_field(node.name)
    if info is not None:
        return ir.Field(node.name, info.type, node.span)
    if ctx.binding and node.name == ctx.binding:
        ctx.error("type_mismatch", f"'{node.name}' is a knowledge row; name one of its columns, "
                  f"e.g. {node.name}.{next(iter(ctx.table.columns), 'column')}", node.span)
        return None
    ctx.error("unknown_field", f"unknown field '{node.name}'", node.span,
              hint=_suggest(node.name, list(CLAIM_FIELDS) + list(DERIVED_FIELDS)))
    return None


def _lower_qualified(node: ast.Qualified, ctx: _Ctx):
    if ctx.window_binding is not None and node.qualifier == ctx.window_binding:
        if node.name not in WINDOW_VALUES:
            ctx.error("unknown_column", f"a window gives no '{node.name}'", node.name_span,
                      hint=_suggest(node.name, WINDOW_VALUES) or f"window values: {', '.join(WINDOW_VALUES)}")
            return None
        return ir.WindowValue(node.name, "number", node.span)
    if ctx.binding is not None and node.qualifier == ctx.binding and ctx.table is None:
        return None  # the lookup's table is unknown or failed to load; that error is already reported
    if ctx.binding is None or node.qualifier != ctx.binding:
        hint = f"this rule's lookup is named '{ctx.binding}'" if ctx.binding else "declare it with: lookup k = TABLE[field]"
        ctx.error("unknown_field", f"'{node.qualifier}' is not a lookup of this rule", node.span, hint=hint)
        return None
    col = ctx.table.columns.get(node.name)
    if col is None:
        ctx.error("unknown_column", f"table '{ctx.table.name}' has no column '{node.name}'", node.name_span,
                  hint=_suggest(node.name, ctx.table.columns) or f"columns: {', '.join(ctx.table.columns)}")
        return None
    return ir.KnowledgeField(node.name, _column_type(col), node.span)


def _lower_set(node: ast.SetLit, ctx: _Ctx):
    items = [lower_expr(i, ctx) for i in node.items]
    if any(i is None for i in items):
        return None
    if not all(isinstance(i, ir.Const) for i in items):
        ctx.error("type_mismatch", "a set literal holds constants only", node.span)
        return None
    types = {i.type for i in items}
    if len(types) > 1:
        ctx.error("type_mismatch", f"a set mixes {' and '.join(sorted(types))} values", node.span)
        return None
    elem = types.pop() if types else "text"
    return ir.Const(tuple(i.value for i in items), f"set:{elem}", node.span)


def _lower_call(node: ast.Call, ctx: _Ctx):
    spec = FUNCTIONS.get(node.func)
    if spec is None:
        ctx.error("unknown_function", f"unknown function '{node.func}'", node.span, hint=_suggest(node.func, FUNCTIONS))
        return None
    params, result, _ = spec
    if node.func == "setting":
        return _lower_setting(node, ctx)
    if len(node.args) != len(params):
        ctx.error("wrong_arguments", f"{node.func}() takes {len(params)} argument(s), got {len(node.args)}", node.span)
        return None
    args = [lower_expr(a, ctx) for a in node.args]
    if any(a is None for a in args):
        return None
    if node.func == "has_diag":
        if args[0].type not in ("text", "list", "set:text"):
            ctx.error("type_mismatch", f"has_diag() takes a code prefix or a set/list of prefixes, got {args[0].type}",
                      node.span)
            return None
    elif node.func == "days_between":
        for a in args:
            if a.type not in ("date", "datetime"):
                ctx.error("type_mismatch", f"days_between() takes dates, got {a.type}", a.span or node.span)
                return None
    elif node.func == "abs":
        if args[0].type != "number":
            ctx.error("type_mismatch", f"abs() takes a number, got {args[0].type}", node.span)
            return None
    elif node.func in ("coalesce", "min", "max"):
        if not _comparable(args[0].type, args[1].type):
            ctx.error("type_mismatch", f"{node.func}() arguments differ in type: {args[0].type} and {args[1].type}",
                      node.span)
            return None
        result = args[0].type if args[0].type != "null" else args[1].type
    return ir.Call(node.func, tuple(args), result, node.span)


def _lower_setting(node: ast.Call, ctx: _Ctx):
    """A threshold with its default; a local profile's [settings] value replaces it when the pack loads."""
    args = [lower_expr(a, ctx) for a in node.args]
    if len(args) != 2 or any(a is None for a in args) or not all(isinstance(a, ir.Const) for a in args) \
            or args[0].type != "text":
        ctx.error("wrong_arguments", 'setting() takes a name and a default value: setting("readmission_days", 15)',
                  node.span)
        return None
    name, default = args[0].value, args[1]
    ctx.settings_used.setdefault(name, (default.value, node.span))
    if name not in ctx.settings:
        return ir.Const(default.value, default.type, node.span)
    value = ctx.settings[name]
    if default.type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return ir.Const(value, "number", node.span)
    if default.type == "text" and isinstance(value, str):
        return ir.Const(value, "text", node.span)
    ctx.error("type_mismatch", f"the profile sets {name} to {value!r}, but the rule's default is a {default.type}",
              node.span)
    return None


_ARITH = ("+", "-", "*", "/")
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


def _lower_binary(node: ast.Binary, ctx: _Ctx):
    left, right = lower_expr(node.left, ctx), lower_expr(node.right, ctx)
    if left is None or right is None:
        return None
    op = node.op
    if op in ("and", "or"):
        for side in (left, right):
            if side.type not in ("bool", "null"):
                ctx.error("type_mismatch", f"'{op}' joins conditions, but this is a {side.type} value",
                          side.span or node.span)
                return None
        return ir.Op(op, (left, right), "bool", node.span)
    if op in _COMPARE:
        return _lower_compare(op, left, right, node, ctx)
    if op in ("in", "not in"):
        if not (right.type.startswith("set:") or right.type == "list"):
            ctx.error("type_mismatch", f"'{op}' needs a set {{…}} or a list on the right, got {right.type}",
                      right.span or node.span)
            return None
        elem = right.type[4:] if right.type.startswith("set:") else "text"
        if not _comparable(left.type, elem):
            ctx.error("type_mismatch", f"a {left.type} value is never in a set of {elem} values", node.span,
                      hint="codes are text: quote them, e.g. {\"11\", \"21\"}" if elem == "number" else None)
            return None
        return ir.Op(op, (left, right), "bool", node.span)
    if op == "startswith":
        if left.type != "text" or right.type not in ("text", "set:text", "list"):
            ctx.error("type_mismatch", f"'startswith' compares text with a text prefix (or a set of them), "
                      f"got {left.type} and {right.type}", node.span)
            return None
        return ir.Op(op, (left, right), "bool", node.span)
    return _lower_arith(op, left, right, node, ctx)


def _lower_compare(op, left, right, node, ctx):
    if isinstance(right, ir.Const) and right.type == "null" or isinstance(left, ir.Const) and left.type == "null":
        if op not in ("==", "!="):
            ctx.error("type_mismatch", f"'{op}' with null; only == null and != null test for a missing value", node.span)
            return None
        subject = left if right.type == "null" else right
        return ir.Op("is_null" if op == "==" else "not_null", (subject,), "bool", node.span)
    if _is_quantity(left.type) != _is_quantity(right.type):
        num = right if not _is_quantity(right.type) else left
        if num.type == "number":
            ctx.error("unit_mismatch", "a quantity compared with a plain number", node.span,
                      hint="give the number a unit, e.g. 4 g or 500 mg")
            return None
    if _is_quantity(left.type) and _is_quantity(right.type):
        dl, dr = _dim(left.type), _dim(right.type)
        if dl and dr and dl != dr:
            ctx.error("unit_mismatch", f"cannot compare {dimension_name(dl)} with {dimension_name(dr)}", node.span)
            return None
        return ir.Op(op, (left, right), "bool", node.span)
    if not _comparable(left.type, right.type):
        hint = "codes are text: quote the value" if {left.type, right.type} == {"text", "number"} else None
        ctx.error("type_mismatch", f"cannot compare {left.type} with {right.type}", node.span, hint=hint)
        return None
    if op not in ("==", "!=") and left.type in ("bool", "list") :
        ctx.error("type_mismatch", f"'{op}' does not order {left.type} values", node.span)
        return None
    return ir.Op(op, (left, right), "bool", node.span)


def _lower_arith(op, left, right, node, ctx):
    lt, rt = left.type, right.type
    if lt == "number" and rt == "number":
        return ir.Op(op, (left, right), "number", node.span)
    if _is_quantity(lt) and rt == "number" and op in ("*", "/"):
        return ir.Op(op, (left, right), lt, node.span)
    if lt == "number" and _is_quantity(rt) and op == "*":
        return ir.Op(op, (left, right), rt, node.span)
    if _is_quantity(lt) and _is_quantity(rt) and op in ("+", "-", "/"):
        dl, dr = _dim(lt), _dim(rt)
        if dl and dr and dl != dr:
            ctx.error("unit_mismatch", f"cannot combine {dimension_name(dl)} with {dimension_name(dr)}", node.span)
            return None
        return ir.Op(op, (left, right), "number" if op == "/" else (lt if dl else rt), node.span)
    if _is_quantity(lt) or _is_quantity(rt):
        ctx.error("unit_mismatch", f"'{op}' between {lt} and {rt}", node.span,
                  hint="add or subtract quantities of one dimension; scale them by plain numbers")
        return None
    ctx.error("type_mismatch", f"'{op}' needs numbers, got {lt} and {rt}", node.span)
    return None


# ---- rules -------------------------------------------------------------------------------------


def _value_from(table: dict, attr: ast.Attr | None, ctx: _Ctx, what: str):
    if attr is None:
        return None
    word, span = attr.value
    if word not in table:
        canon = sorted(set(table))
        ctx.error("bad_attribute_value", f"{what} '{word}' is not one of {', '.join(canon)}", span,
                  hint=_suggest(word, table))
        return None
    return table[word]


def lower_template(raw: str, span: ast.Span, ctx: _Ctx) -> ir.Template:
    """Parse ``{placeholder}``s of a message; an unknown one is reported at its exact column."""
    body = raw[1:-1]
    parts: list = []
    pos = 0
    for m in _PLACEHOLDER_RE.finditer(body):
        if m.start() > pos:
            parts.append(body[pos:m.start()])
        name = m.group(1).strip()
        col = span.col + 1 + m.start()
        ph_span = ast.Span(span.file, span.line, col, span.line, col + len(m.group(0)))
        parts.append(_lower_placeholder(name, ph_span, ctx))
        pos = m.end()
    if pos < len(body):
        parts.append(body[pos:])
    parts = [p for p in parts if p is not None]
    text = body.replace('\\"', '"')
    return ir.Template(tuple(p.replace('\\"', '"') if isinstance(p, str) else p for p in parts), text)


def _lower_placeholder(name: str, span: ast.Span, ctx: _Ctx):
    if name in SPECIAL_PLACEHOLDERS:
        return ir.Field(f"@{name}", SPECIAL_PLACEHOLDERS[name], span)
    if "." in name:
        q, _, col = name.partition(".")
        if q == ctx.window_binding and col in WINDOW_VALUES:
            return ir.WindowValue(col, "number", span)
        if ctx.binding == q and ctx.table is not None and col in ctx.table.columns:
            return ir.KnowledgeField(col, _column_type(ctx.table.columns[col]), span)
        if ctx.binding == q and ctx.table is None:
            return None
    elif lookup_field(name) is not None:
        return ir.Field(name, lookup_field(name).type, span)
    candidates = list(CLAIM_FIELDS) + list(DERIVED_FIELDS) + list(SPECIAL_PLACEHOLDERS)
    if ctx.binding and ctx.table is not None:
        candidates += [f"{ctx.binding}.{c}" for c in ctx.table.columns]
    ctx.error("unknown_placeholder", f"placeholder '{{{name}}}' names nothing this rule can show", span,
              hint=_suggest(name, candidates))
    return None


def check_rule(decl: ast.RuleDecl, tables: dict[str, KnowledgeTable | None], default_version: str,
               settings: dict | None = None, settings_used: dict | None = None,
               ) -> tuple[ir.Rule | None, list[Diagnostic]]:
    ctx = _Ctx(tables)
    ctx.settings = settings or {}
    if settings_used is not None:
        ctx.settings_used = settings_used
    seen: dict[str, ast.Attr] = {}
    for a in decl.attrs:
        if a.keyword in seen and a.keyword in _SINGLE:
            ctx.error("duplicate_attribute", f"'{a.keyword}' is given twice in rule {decl.code}", a.span,
                      hint=f"first given at {seen[a.keyword].span}")
        seen.setdefault(a.keyword, a)
    A = decl.attr

    lookup = None
    if (la := A("lookup")) is not None:
        lk: ast.Lookup = la.value
        if lk.table not in tables:
            ctx.error("unknown_table", f"unknown table '{lk.table}'", lk.table_span,
                      hint=_suggest(lk.table, tables) or (f"tables: {', '.join(tables)}" if tables else "no table is declared"))
            ctx.binding = lk.binding  # columns of an unknown table are not reported again
        else:
            ctx.binding, ctx.table = lk.binding, tables[lk.table]
            if ctx.table is not None:
                key = lower_expr(lk.key, ctx)
                if key is not None and key.type != "text":
                    ctx.error("type_mismatch", f"a lookup key is text, got {key.type}", lk.key.span)
                elif key is not None:
                    lookup = ir.Lookup(lk.table, key, ctx.table.match)

    window = None
    if (wa := A("window")) is not None:
        if A("lookup") is not None and wa.value.kind != "window":
            ctx.error("duplicate_attribute", f"a {wa.value.kind} rule finds its knowledge row itself; drop the "
                      "'lookup'", A("lookup").span)
        window, lookup = _lower_cross_line(wa.value, ctx, lookup)

    result_type = _value_from(RESULT_TYPES, A("result"), ctx, "result type")
    if A("result") is None:
        ctx.error("missing_attribute", f"rule {decl.code} has no 'result' (明确 or 可疑)", decl.code_span)
    severity = _value_from(SEVERITIES, A("severity"), ctx, "severity")
    if severity is None and A("severity") is None:
        severity = "block" if result_type == "明确" else "warn"
    stages = ALL_STAGES
    if (st := A("stages")) is not None:
        stages = frozenset(s for s in (_value_from(STAGES, ast.Attr("stages", v, st.span), ctx, "stage")
                                       for v in st.value) if s)
    eff_from = eff_to = None
    if (ef := A("effective")) is not None:
        eff_from = ef.value[0][0]
        if len(ef.value) > 1:
            eff_to = ef.value[1][0]
            if eff_to < eff_from:
                ctx.error("bad_date", f"effective range ends ({eff_to}) before it starts ({eff_from})", ef.value[1][1])

    scope = _lower_condition(A("scope"), ctx, "scope")
    condition = _lower_condition(A("when"), ctx, "when")
    if window is not None and window.kind != "window":
        # pair: flagged when a partner is present; requires: when none is
        partner = ir.WindowValue("partner", "bool")
        test = partner if window.kind == "pair" else ir.Op("not", (partner,), "bool")
        condition = test if A("when") is None else (ir.Op("and", (condition, test), "bool") if condition else None)
    elif A("when") is None:
        ctx.error("missing_attribute", f"rule {decl.code} has no 'when' condition", decl.code_span)

    amount = ir.Field("inscp_scp_amt", "number")
    if (am := A("amount")) is not None:
        amount = lower_expr(am.value, ctx)
        if amount is not None and amount.type != "number":
            ctx.error("type_mismatch", f"the amount is money (a number), got {amount.type}", am.value.span)
            amount = None

    message = None
    if (ms := A("message")) is not None:
        message = lower_template(ms.value[0], ms.value[1], ctx)
    else:
        ctx.error("missing_attribute", f"rule {decl.code} has no 'message'", decl.code_span)

    basis = None
    if (bs := A("basis")) is not None:
        basis = ir.Basis(bs.value[0], bs.value[1] if len(bs.value) > 1 else None)

    examples = tuple(e for e in (_check_example(x, ctx) for x in decl.examples) if e is not None)

    if any(d.is_error for d in ctx.diags):
        return None, ctx.diags
    rule = ir.Rule(
        code=decl.code, name=decl.name,
        rule_class=A("class").value[0] if A("class") else decl.name,
        version=A("version").value[0] if A("version") else default_version,
        result_type=result_type, severity=severity, stages=stages,
        effective_from=eff_from, effective_to=eff_to, scope=scope, lookup=lookup, condition=condition,
        message=message, amount=amount, basis=basis, examples=examples, span=decl.span, window=window)
    return rule, ctx.diags


def _lower_cross_line(cl: ast.CrossLine, ctx: _Ctx, lookup):
    """``window`` / ``pair`` / ``requires`` -> (ir.Window, the rule's lookup)."""
    scope = WINDOW_SCOPES.get(cl.scope.name)
    if scope is None:
        ctx.error("bad_attribute_value", f"window scope '{cl.scope.name}' is not one of "
                  f"{', '.join(sorted(set(WINDOW_SCOPES.values())))}", cl.scope.span,
                  hint=_suggest(cl.scope.name, WINDOW_SCOPES))
    if cl.kind != "window":
        lookup = _pair_lookup(cl, ctx)
    rolling = None
    if cl.scope.rolling is not None:
        rolling = lower_expr(cl.scope.rolling, ctx)
        if rolling is not None and rolling.type not in ("number", "quantity:days"):
            ctx.error("type_mismatch", f"'rolling' takes a number of days, got {rolling.type}", cl.scope.rolling.span)
        if scope is not None and scope not in ("patient", "institution"):  # unknown scope: reported above
            ctx.error("bad_attribute_value", f"'rolling' windows run over a patient's history: write 'within "
                      f"patient rolling …', not '{cl.scope.name} rolling'", cl.scope.span)
        if cl.whole:
            ctx.error("bad_attribute_value", "'all' counts a whole group; a rolling window ends at each line",
                      cl.span)
    if cl.kind != "window":
        return ir.Window(cl.kind, scope or "encounter", rolling, unordered=cl.unordered), lookup
    same = _lower_same(cl, ctx)
    where = None
    if cl.where is not None:
        where = lower_expr(cl.where, ctx)
        if where is not None and where.type != "bool":
            ctx.error("type_mismatch", f"'where' needs a condition, got a {where.type} value", cl.where.span)
        elif where is not None and any(isinstance(n, ir.KnowledgeField) for n in ir.walk(where)):
            ctx.error("type_mismatch", "'where' tests the fields of the lines counted, not a knowledge row",
                      cl.where.span, hint="move the knowledge test into 'when'")
    ctx.window_binding = cl.binding
    return ir.Window("window", scope or "encounter", rolling, cl.whole, same, where), lookup


def _pair_lookup(cl: ast.CrossLine, ctx: _Ctx):
    if cl.table not in ctx.tables:
        ctx.error("unknown_table", f"unknown table '{cl.table}'", cl.table_span, hint=_suggest(cl.table, ctx.tables))
        ctx.binding = cl.binding
        return None
    table = ctx.tables[cl.table]
    ctx.binding, ctx.table = cl.binding, table
    if table is None:
        return None
    if table.partner is None:
        ctx.error("missing_attribute", f"table '{cl.table}' has no partner column; a {cl.kind} table declares "
                  "'key A … match …' and 'partner B … match …'", cl.table_span)
        return None
    key = lower_expr(cl.key, ctx)
    if key is None:
        return None
    if key.type != "text":
        ctx.error("type_mismatch", f"a lookup key is text, got {key.type}", cl.key.span)
        return None
    side = "key" if cl.kind == "requires" else ("either" if cl.unordered else "partner")
    match = table.match if side == "key" else table.partner_match
    return ir.Lookup(cl.table, key, match, side)


def _lower_same(cl: ast.CrossLine, ctx: _Ctx):
    if cl.same is None:
        return None
    if len(cl.same) == 1:
        name = cl.same[0]
        if name == ctx.binding:
            return ("point",)
        if lookup_field(name) is not None:
            return ("field", name)
        ctx.error("unknown_field", f"'same {name}': '{name}' is neither this rule's lookup nor a claim field",
                  cl.same_span, hint=_suggest(name, list(CLAIM_FIELDS) + ([ctx.binding] if ctx.binding else [])))
        return None
    q, col = cl.same
    if q != ctx.binding or ctx.table is None or col not in ctx.table.columns:
        ctx.error("unknown_column", f"'same {q}.{col}' names no column of this rule's lookup", cl.same_span)
        return None
    return ("knowledge", col)


def _lower_condition(attr, ctx, what):
    if attr is None:
        return None
    expr = lower_expr(attr.value, ctx)
    if expr is not None and expr.type != "bool":
        ctx.error("type_mismatch", f"'{what}' needs a condition (true/false), got a {expr.type} value", attr.value.span)
        return None
    return expr


# ---- examples ------------------------------------------------------------------------------------

_EXAMPLE_TYPES = {"text": ("text",), "number": ("number",), "date": ("date",), "datetime": ("datetime", "date"),
                  "list": ("list", "text"), "bool": ("bool",)}


def _example_fields(fields: tuple, ctx: _Ctx) -> tuple:
    out = []
    for fv in fields:
        info = CLAIM_FIELDS.get(fv.name)
        if info is None:
            hint = ("derived values are computed from claim fields; set those instead" if fv.name in DERIVED_FIELDS
                    else _suggest(fv.name, CLAIM_FIELDS))
            ctx.error("bad_example", f"unknown claim field '{fv.name}' in example", fv.span, hint=hint)
            continue
        lit = fv.value
        if lit.kind != "null" and lit.kind not in _EXAMPLE_TYPES[info.type]:
            hint = f'codes are text: write {fv.name}: "{lit.value}"' if info.type == "text" else None
            ctx.error("bad_example", f"field '{fv.name}' is {info.type}, the example gives {lit.kind}", lit.span,
                      hint=hint)
            continue
        value = lit.value
        if info.type == "list" and lit.kind == "text":
            value = split_list(value)  # read as the claims reader reads a list written as text
        if info.type == "datetime" and lit.kind == "date":
            value = dt.datetime.combine(value, dt.time())
        out.append((fv.name, value))
    return tuple(out)


def _check_example(ex: ast.Example, ctx: _Ctx) -> ir.Example | None:
    before = len(ctx.diags)
    patient = _example_fields(ex.patient, ctx)
    encounter = _example_fields(ex.encounter, ctx)
    encounters = tuple((label, _example_fields(fields, ctx)) for label, fields, _ in ex.encounters)
    lines, labels = [], set()
    for label, fields, span, at in ex.lines:
        if label in labels:
            ctx.error("bad_example", f"line label '{label}' used twice in example '{ex.name}'", span)
        if at is not None and at not in {e[0] for e in encounters}:
            ctx.error("bad_example", f"line '{label}' is 'at {at}', an encounter the example does not declare", span,
                      hint=f"declare it: encounter {at} {{ mdtrt_id: \"…\", begntime: … }}")
        labels.add(label)
        lines.append(ir.ExampleLine(label, _example_fields(fields, ctx), at))
    flagged, insufficient, amount = [], [], None
    if not ex.expectations:
        ctx.error("bad_example", f"example '{ex.name}' has no 'expect'", ex.span)
    for e in ex.expectations:
        for label in e.labels:
            if label not in labels:
                ctx.error("bad_example", f"expect names line '{label}', which the example does not have", e.span,
                          hint=f"lines: {', '.join(sorted(labels)) or 'none'}")
        if e.kind == "flagged":
            flagged += e.labels
            amount = e.amount if e.amount is not None else amount
        elif e.kind == "insufficient":
            insufficient += e.labels
    if len(ctx.diags) > before and any(d.is_error for d in ctx.diags[before:]):
        return None
    return ir.Example(ex.name, patient, encounter, tuple(lines), tuple(flagged), tuple(insufficient), amount, ex.span,
                      encounters)
