"""Inline requests shaped like the national pre-audit interface (3101) -> typed claim lines.

patient_dtos[] -> fsi_encounter_dtos[] -> fsi_diagnose_dtos[] and fsi_order_dtos[]. Order lines
may also carry national claim field names directly (sin_dos_dscr, used_frqu_dscr, prd_days,
hosp_appr_flag, inscp_scp_amt …) for rules that need them. Errors name the field by its JSON path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from claimaudit.dsl.schema import CLAIM_FIELDS

from .claims import coerce_fields, identity_problem


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
