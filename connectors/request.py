"""Inline requests shaped like the national pre-audit interface (3101) -> typed claim lines.

patient_dtos[] -> fsi_encounter_dtos[] -> fsi_diagnose_dtos[] and fsi_order_dtos[]. Order lines
may also carry national claim field names directly (sin_dos_dscr, used_frqu_dscr, prd_days,
hosp_appr_flag, inscp_scp_amt …) for rules that need them. Errors name the field by its JSON path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from claimaudit.dsl.schema import CLAIM_FIELDS

from .claims import _CONVERT, coerce_fields, identity_problem


class RequestError(Exception):
    """The request cannot be screened; the message names the field (JSON path)."""


PATIENT_MAP = {"patn_id": "psn_no", "gend": "gend", "brdy": "brdy", "insutype": "insutype", "psn_type": "psn_type"}
ENCOUNTER_MAP = {"mdtrt_id": "mdtrt_id", "medins_id": "fixmedins_code", "medins_name": "fixmedins_name",
                 "medins_lv": "hosp_lv", "med_type": "med_type", "insutype": "insutype", "adm_date": "begntime",
                 "dscg_date": "endtime", "dscg_main_dise_codg": "dscg_maindiag_code", "setl_id": "setl_id"}
ORDER_MAP = {"rx_id": "feedetl_sn", "rxno": "rxno", "hilist_code": "med_list_codg", "hilist_name": "hilist_name",
             "hilist_type": "list_type", "hosplist_code": "medins_list_codg", "cnt": "cnt", "pric": "pric",
             "sumamt": "det_item_fee_sumamt", "drord_begn_date": "fee_ocur_time", "drord_dr_codg": "bilg_dr_codg",
             "drord_dept_codg": "bilg_dept_codg", "drord_no": "drord_no"}


@dataclass
class ScreenRequest:
    lines: list[dict]  # typed claim lines
    current: set  # line ids of the orders being checked (curr_drord_flag = 1)
    rule_ids: tuple = ()


def parse_json(text: str, source: str = "request") -> dict:
    if text.startswith("\ufeff"):  # byte-order mark from Windows editors
        text = text[1:]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(f"{source}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    if not isinstance(doc, dict):
        raise RequestError(f"{source}: the request must be a JSON object with patient_dtos")
    return doc


def _list_at(obj: dict, key: str, path: str, required=True) -> list:
    v = obj.get(key)
    if v is None:
        if required:
            raise RequestError(f"{path}.{key}: missing (a list is required)")
        return []
    if not isinstance(v, list):
        raise RequestError(f"{path}.{key}: must be a list, got {type(v).__name__}")
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise RequestError(f"{path}.{key}[{i}]: must be an object")
    return v


def _copy(src: dict, mapping: dict, dst: dict) -> None:
    for k, target in mapping.items():
        if src.get(k) is not None:
            dst[target] = src[k]
    for k in src:  # national claim names pass through unchanged
        if k in CLAIM_FIELDS and src[k] is not None:
            dst[k] = src[k]


# Claim fields a line fills from another one when the request does not give them.
_FILLED_FROM = {"inscp_scp_amt": "det_item_fee_sumamt", "fee_ocur_time": "begntime"}


def _origin(field: str, levels) -> str | None:
    """JSON path of the key that supplied ``field``: the order overrides its encounter, the encounter
    its patient, and within one object a national field name overrides the interface name (as _copy)."""
    for path, obj, mapping in levels:
        if field in CLAIM_FIELDS and obj.get(field) is not None:
            return f"{path}.{field}"
        for key, target in mapping.items():
            if target == field and obj.get(key) is not None:
                return f"{path}.{key}"
    if field in _FILLED_FROM:
        return _origin(_FILLED_FROM[field], levels)
    return None


def request_lines(doc: dict, fields: tuple | None = None) -> ScreenRequest:
    """``fields``: only these (name, FieldInfo) pairs are typed (see claims.coerce_row). Patient and
    encounter fields are typed once per encounter, order fields once per order."""
    fields = fields or tuple(CLAIM_FIELDS.items())
    empty = {name: None for name, _ in fields}
    lines, current, memo = [], set(), {}
    patients = _list_at(doc, "patient_dtos", "request")
    for pi, patient in enumerate(patients):
        ppath = f"patient_dtos[{pi}]"
        base = {}
        _copy(patient, PATIENT_MAP, base)
        for ei, enc in enumerate(_list_at(patient, "fsi_encounter_dtos", ppath)):
            epath = f"{ppath}.fsi_encounter_dtos[{ei}]"
            enc_fields = dict(base)
            _copy(enc, ENCOUNTER_MAP, enc_fields)
            diags = _list_at(enc, "fsi_diagnose_dtos", epath, required=False)
            codes = [str(d["dise_codg"]).strip() for d in diags if d.get("dise_codg")]
            mains = [str(d["dise_codg"]).strip() for d in diags if d.get("dise_codg") and str(d.get("maindise_flag")) == "1"]
            if codes:
                enc_fields["diag_codes"] = codes
            if mains and "dscg_maindiag_code" not in enc_fields:
                enc_fields["dscg_maindiag_code"] = mains[0]
            levels = ((epath, enc, ENCOUNTER_MAP), (ppath, patient, PATIENT_MAP))
            typed_base, problem = coerce_fields(enc_fields, tuple(f for f in fields if f[0] in enc_fields), memo)
            if problem:
                raise RequestError(f"{_origin(problem[0], levels) or f'{epath}.{problem[0]}'}: {problem[1]}")
            for oi, order in enumerate(_list_at(enc, "fsi_order_dtos", epath)):
                opath = f"{epath}.fsi_order_dtos[{oi}]"
                raw = {}
                _copy(order, ORDER_MAP, raw)
                if raw.get("inscp_scp_amt") is None and raw.get("det_item_fee_sumamt") is not None:
                    raw["inscp_scp_amt"] = raw["det_item_fee_sumamt"]  # before settlement the order amount is at risk
                if raw.get("fee_ocur_time") is None and enc_fields.get("begntime") is not None:
                    raw["fee_ocur_time"] = enc_fields["begntime"]
                typed, problem = coerce_fields(raw, tuple(f for f in fields if f[0] in raw), memo)
                line = dict(empty)
                line.update(typed_base)
                line.update(typed)
                problem = problem or identity_problem(line)
                if problem:
                    field, why = problem
                    raise RequestError(f"{_origin(field, ((opath, order, ORDER_MAP),) + levels) or f'{opath}.{field}'}: {why}")
                lines.append(line)
                flag = order.get("curr_drord_flag")
                if flag is None or str(flag).strip() in ("", "1"):  # absent or null: the order being checked
                    current.add(line["feedetl_sn"])
    rule_ids = doc.get("rule_ids") or ()
    if not isinstance(rule_ids, (list, tuple)):
        raise RequestError("request.rule_ids: must be a list of rule codes")
    return ScreenRequest(lines, current, tuple(str(r) for r in rule_ids))


# ---- the fast mapping ------------------------------------------------------------------------------------
#
# ``request_lines`` above is the definition: general, and exact about errors. A screener maps every
# request, so it builds a ``RequestMapper`` once for the fields its rules and findings read: per field,
# where its value comes from in precedence order (national name, interface names, the fills) and how it is
# typed; a kernel (engine/kernels/_inline.pyx ``map_request``, twin inline_twin.py) then walks the whole
# request in one call — patients, encounters and their diagnoses, orders — and makes each line in one loop
# over the keys the order has; date texts are parsed once (the compiled kernel reads the usual ISO shapes
# itself and leaves the rest to the general conversion), lists of clean codes become tuples. Anything irregular — a value that does not convert, a missing line id, an
# unexpected shape — sends the whole request back to ``request_lines``, so errors are reported exactly as
# before and the fast path never has to.


class _Irregular(Exception):
    """The request needs the general mapping (which reports the problem, if there is one)."""


_DATE_MEMO_LIMIT = 50_000


def _blank(v) -> bool:
    return isinstance(v, str) and not v.strip()


def _general(kind: str):
    """Conversion of one value as coerce_fields does it (blank text is null); raises when it cannot."""
    convert = _CONVERT[kind]

    def general(v):
        return None if _blank(v) else convert(v)
    return general


def _memoised(kind: str) -> tuple:
    """(memo, parse): date and date-time text repeats across lines and requests, parse each distinct text
    once (the kernel reads the memo itself and calls ``parse`` on a miss)."""
    general = _general(kind)
    memo: dict = {}

    def parse(v):
        if type(v) is not str:
            return general(v)
        got = memo.get(v, memo)
        if got is memo:
            if len(memo) >= _DATE_MEMO_LIMIT:
                memo.clear()
            got = memo[v] = general(v)
        return got
    return memo, parse


def _interface_names(mapping: dict) -> dict:
    """National field -> interface names in precedence order (a later one wins in _copy)."""
    out: dict = {}
    for key, target in mapping.items():
        out.setdefault(target, []).insert(0, key)
    return out


_ORDER_NAMES = _interface_names(ORDER_MAP)
_ENCOUNTER_NAMES = _interface_names(ENCOUNTER_MAP)
_PATIENT_NAMES = _interface_names(PATIENT_MAP)


def _names(field: str, interface: dict) -> list:
    return list(dict.fromkeys([field] + interface.get(field, [])))  # an interface name may be the national one


def order_picks(field: str) -> tuple:
    """Where an order line's field comes from, (source, key) in precedence order: the order (source 0) by its
    national name, then its interface names; then the fills of request_lines — the amount at risk is the
    order amount, the time of service the encounter's begntime (source 1, the encounter's raw values)."""
    picks = [(0, k) for k in _names(field, _ORDER_NAMES)]
    if field == "inscp_scp_amt":
        picks += [(0, k) for k in _names("det_item_fee_sumamt", _ORDER_NAMES)]
    if field == "fee_ocur_time":
        picks.append((1, "begntime"))
    return tuple(picks)


def encounter_picks(field: str) -> tuple:
    """Where an encounter's field comes from: the encounter (source 0), then the patient (source 1), each by
    national name then interface names; the diagnosis list from the diagnoses first, the main diagnosis from
    them last (source 2: ``codes`` and ``main``)."""
    picks = [(0, k) for k in _names(field, _ENCOUNTER_NAMES)] + [(1, k) for k in _names(field, _PATIENT_NAMES)]
    if field == "diag_codes":
        return ((2, "codes"),) + tuple(picks)
    if field == "dscg_maindiag_code":
        picks.append((2, "main"))
    return tuple(picks)


class RequestMapper:
    """3101 request -> typed lines for a fixed set of fields, fast; ``request_lines`` on anything irregular.
    ``kernels``: 'cython' or 'python' (default: as CLAIMAUDIT_KERNELS selects)."""

    def __init__(self, fields: tuple | None = None, kernels: str | None = None):
        from claimaudit.engine.kernels import inline as inline_kernels
        self.kernels = inline_kernels.backend(kernels)
        self.fields = fields or tuple(CLAIM_FIELDS.items())
        self.empty = {name: None for name, _ in self.fields}
        self.order_spec = self.kernels.prepare(self._spec(order_picks), 2)  # the order, its encounter's begntime
        self.encounter_spec = self.kernels.prepare(self._spec(encounter_picks), 3)  # encounter, patient, diagnoses
        self.general_calls = 0  # requests that took the general mapping (tests watch it)

    def _spec(self, picks) -> tuple:
        k = self.kernels
        parsed = {kind: _memoised(kind) for kind in ("date", "datetime")}
        out = []
        for name, info in self.fields:
            if info.type in parsed:
                memo, convert = parsed[info.type]
                out.append((name, k.DATE if info.type == "date" else k.DATETIME, picks(name), memo, convert))
            else:
                kind = {"text": k.TEXT, "number": k.NUMBER, "list": k.LIST}.get(info.type, k.OTHER)
                out.append((name, kind, picks(name), None, _general(info.type)))
        return tuple(out)

    def request(self, doc: dict) -> ScreenRequest:
        try:
            return self._fast(doc)
        except Exception:  # noqa: BLE001 - whatever it is, the general mapping reports it precisely
            self.general_calls += 1
            return request_lines(doc, self.fields)

    def _fast(self, doc: dict) -> ScreenRequest:
        """The kernel walks the request (patients, encounters, diagnoses, orders) in one call."""
        got = self.kernels.map_request(doc, self.encounter_spec, self.order_spec, self.empty, _BEGNTIME)
        if got is None:
            raise _Irregular("request")
        rule_ids = doc.get("rule_ids") or ()
        if not isinstance(rule_ids, (list, tuple)):
            raise _Irregular("rule_ids")
        return ScreenRequest(got[0], got[1], tuple([str(r) for r in rule_ids]) if rule_ids else ())


_BEGNTIME = encounter_picks("begntime")
assert {source for source, _ in _BEGNTIME} <= {0, 1}  # the encounter, its patient (map_request reads these)
