"""Assembling a cross-line violation's finding (engine/inline_cross_render.py), in Python: the twin of
``_crossrender.pyx``, selected with ``CLAIMAUDIT_KERNELS=python``. Same signatures, same results
(tests/test_cross_kernels.py).

A rule's Program holds what every violation of it shares (the finding's fields in order, the evidence fields,
how values are shown); ``values`` fills in one violation's: the message from its parts (texts, claim fields
shown as themselves, functions for the rest), the line's identifiers, the evidence, the involved lines and
the finding id. The knowledge row's parts and the amount come worked out by the caller."""
from __future__ import annotations

import hashlib

_sha1 = hashlib.sha1


class Program:
    """What every violation of one rule shares."""

    def __init__(self, template: dict, evidence_fields: tuple, fmt, iso, violating: str, involved: str):
        """``template``: every field of a finding in order (copied per violation); ``fmt``: value -> text;
        ``iso``: a time of service -> its date's ISO text; ``violating``/``involved``: the line roles."""
        self.template, self.evidence_fields, self.fmt, self.iso = template, evidence_fields, fmt, iso
        self.violating, self.involved = violating, involved

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
        values["evidence"] = tuple([(n, v if type(v := line.get(n)) is str else fmt(field(n)))
                                    for n in self.evidence_fields]) + tail
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
