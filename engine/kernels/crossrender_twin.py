"""Assembling a cross-line violation's finding (engine/inline_cross_render.py), in Python: the twin of
``_crossrender.pyx``, selected with ``CLAIMAUDIT_KERNELS=python``. Same signatures, same results
(tests/test_cross_kernels.py).

A rule's Program holds what every violation of it shares (the finding's fields in order, the evidence fields,
how values are shown); ``values`` fills in one violation's: the message from its parts (texts, claim fields
shown as themselves, functions for the rest), the line's identifiers, the evidence, the involved lines and
the finding id. The knowledge row's parts come worked out by the caller (``point``).

``violation`` is the whole of one violation after its window is known: the knowledge row's parts, the row
and window values the closures read, the amount and its formula, the extra values a message may show, the
fields (``values``) and the finding (``bind`` gives it what the rule's renderer compiled)."""
from __future__ import annotations

import hashlib

from claimaudit.engine.values import round_money

_sha1 = hashlib.sha1
_new = object.__new__
_set = object.__setattr__


class Program:
    """What every violation of one rule shares."""

    def __init__(self, template: dict, evidence_fields: tuple, fmt, iso, violating: str, involved: str):
        """``template``: every field of a finding in order (copied per violation); ``fmt``: value -> text;
        ``iso``: a time of service -> its date's ISO text; ``violating``/``involved``: the line roles."""
        self.template, self.evidence_fields, self.fmt, self.iso = template, evidence_fields, fmt, iso
        self.violating, self.involved = violating, involved

    def bind(self, points: dict, point, wkeys: tuple, window_evidence: tuple, reads_row: bool, amount_field,
             amount, amount_names: str, extra, finding_type, unknown_type, mark) -> None:
        """What ``violation`` needs of the rule's renderer (inline_cross_render.CrossRenderer): ``points``
        (row index -> its parts, filled by ``point(index)`` on first use), the window values read as parameters
        (``wkeys``) and shown (``window_evidence``), whether the closures read the row and window
        (``reads_row``), the amount as one claim field (``amount_field``, or None) or its compiled function
        (``amount``: env -> value), the amount's name text, ``extra`` ((amount, knowledge text, source) ->
        the values a message shows, or None), the finding type, the Unknown type, and ``mark`` (a finding ->
        the finding under a profile, or None)."""
        self.points, self.point, self.wkeys, self.window_evidence = points, point, wkeys, window_evidence
        self.reads_row, self.amount_field, self.amount, self.amount_names = reads_row, amount_field, amount, amount_names
        self.extra, self.finding_type, self.unknown_type, self.mark = extra, finding_type, unknown_type, mark

    def violation(self, env, index: int, window, involved: tuple):
        """The finding on ``env.line`` for knowledge row ``index`` (-1: none) with the window's values (by
        ``w.<name>``, or an Unknown for the whole window) and its involved lines. ``env`` is the line's (its
        derived values are reused); its ``row`` is replaced when the closures read it."""
        got = self.points.get(index)
        kp, prefix, kevidence, params, ktext, ksource, message, amount_text = \
            got if got is not None else self.point(index)
        fmt = self.fmt
        if type(window) is self.unknown_type:
            if self.reads_row:
                env.row = {**params, **dict.fromkeys(self.wkeys, window)}
            tail = kevidence
        else:
            if self.reads_row:
                env.row = {**params, **window}
            tail = kevidence + tuple([(key, fmt(window[key])) for key in self.window_evidence])
        names = self.amount_names
        value = env.line.get(self.amount_field) if self.amount_field is not None else None
        if value is not None:  # the field's value is the amount, and all its text shows
            amount = round_money(float(value))
            values = fmt(value)
            formula = f"{names} = {values} = {amount:.2f}" if names != values else f"{names} = {amount:.2f}"
        elif type(value := self.amount(env)) is self.unknown_type:
            amount, formula = None, f"{names}: cannot compute ({value.reason})"
        else:
            amount = round_money(float(value))
            values = amount_text if type(amount_text) is str else \
                "".join([p if type(p) is str else fmt(p[1](env)) for p in amount_text])
            formula = f"{names} = {values} = {amount:.2f}" if names != values else f"{names} = {amount:.2f}"
        extra = self.extra(amount, ktext, ksource) if self.extra is not None else None
        found = _new(self.finding_type)  # as findings.new_finding, without copying the values once more
        _set(found, "__dict__", self.values(env.line, env, message, involved, extra, prefix, kp, tail, amount, formula))
        return found if self.mark is None else self.mark(found)

    def values(self, line: dict, env, message: tuple, involved: tuple, extra, prefix: str, knowledge, tail: tuple,
               amount, formula: str) -> dict:
        """A violation's fields on ``line``. ``message``: texts, and (claim field or None, function ``(env,
        involved lines, extra) -> text``) — a claim field whose value is text shows as itself; ``tail``: the
        evidence after the line's (knowledge row, window); ``prefix``: the finding id's, up to the encounter."""
        text = "".join([p if type(p) is str else _shown(p, line, env, involved, extra) for p in message])
        line_id = str(line.get("feedetl_sn"))
        mdtrt_id = line.get("mdtrt_id")
        t = line.get("fee_ocur_time")
        fmt, field = self.fmt, env.field
        values = self.template.copy()
        values["finding_id"] = _sha1(f"{prefix}{mdtrt_id}\x1f{line_id}".encode()).hexdigest()[:16]
        values["message"] = text
        values["line_id"] = line_id
        values["mdtrt_id"] = mdtrt_id
        values["psn_no"] = line.get("psn_no")
        values["fixmedins_code"] = line.get("fixmedins_code")
        values["bilg_dept_codg"] = line.get("bilg_dept_codg")
        values["bilg_dr_codg"] = line.get("bilg_dr_codg")
        values["med_list_codg"] = line.get("med_list_codg")
        values["service_date"] = None if t is None else self.iso(t)
        values["knowledge"] = knowledge
        values["evidence"] = tuple([(n, v if type(v := line.get(n)) is str else fmt(field(n) if v is None else v))
                                    for n in self.evidence_fields]) + tail  # (a value there is what field gives)
        values["amount"] = amount
        values["amount_formula"] = formula
        values["lines"] = ((line_id, self.violating),) + tuple([(str(m.get("feedetl_sn")), self.involved)
                                                                for m in involved])
        return values


def _shown(part: tuple, line: dict, env, involved: tuple, extra) -> str:
    name, fn = part
    if name is not None:
        v = line.get(name)
        if type(v) is str:
            return v
    return fn(env, involved, extra)
