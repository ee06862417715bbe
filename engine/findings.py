"""Findings: what a rule found on which lines, and everything needed to defend it in an appeal."""
from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass, fields

from claimaudit.dsl.parse import no_cyclic_gc

VIOLATION = "violation"
INSUFFICIENT = "insufficient_data"
ROLE_VIOLATING, ROLE_INVOLVED = 1, 2  # 违规项 / 涉及项, as vola_item_type in the national interface
SEVERITY_DEGREE = {"block": "1", "warn": "2", "inform": "3"}


@dataclass(frozen=True)
class KnowledgePoint:
    table: str | None  # None for a rule written without a table
    key: str | None
    file_row: int | None
    point_id: str | None
    text: str | None  # the original constraint text
    source: str | None  # batch, document, authority


@dataclass(frozen=True)
class Finding:
    finding_id: str
    outcome: str  # violation | insufficient_data
    rule_code: str
    rule_name: str
    rule_class: str
    rule_version: str
    result_type: str  # 明确 | 可疑
    severity: str  # block | warn | inform
    message: str
    line_id: str
    mdtrt_id: str | None
    psn_no: str | None
    fixmedins_code: str | None
    bilg_dept_codg: str | None
    bilg_dr_codg: str | None
    med_list_codg: str | None
    service_date: str | None
    knowledge: KnowledgePoint | None
    evidence: tuple  # of (name, value as text)
    amount: float | None
    amount_formula: str
    reason: str | None  # why the data was insufficient
    lines: tuple  # of (line_id, role)
    rule_location: str
    profile: str | None = None  # the local profile in force
    shadow: bool = False  # shadow mode: recorded, never shown to prescribers
    exemption: str | None = None  # the exemption that covers it: reason (authority document)

    def key(self) -> tuple:
        """What executors must agree on (ids, outcome, amounts, message), independent of order."""
        return (self.finding_id, self.outcome, self.rule_code, self.line_id, self.message, self.amount, self.lines)

    def to_record(self) -> dict:
        """Flat record for Parquet/CSV output."""
        kp = self.knowledge
        return {
            "finding_id": self.finding_id, "outcome": self.outcome, "rule_code": self.rule_code,
            "rule_name": self.rule_name, "rule_class": self.rule_class, "rule_version": self.rule_version,
            "result_type": self.result_type, "severity": self.severity, "message": self.message,
            "feedetl_sn": self.line_id, "mdtrt_id": self.mdtrt_id, "psn_no": self.psn_no,
            "fixmedins_code": self.fixmedins_code, "bilg_dept_codg": self.bilg_dept_codg,
            "bilg_dr_codg": self.bilg_dr_codg, "med_list_codg": self.med_list_codg,
            "service_date": self.service_date,
            "knowledge_table": kp.table if kp else None, "knowledge_key": kp.key if kp else None,
            "knowledge_row": kp.file_row if kp else None, "knowledge_id": kp.point_id if kp else None,
            "knowledge_text": kp.text if kp else None, "knowledge_source": kp.source if kp else None,
            "evidence": json.dumps(dict(self.evidence), ensure_ascii=False),
            "amount": self.amount, "amount_formula": self.amount_formula, "reason": self.reason,
            "involved_lines": json.dumps([{"feedetl_sn": i, "role": r} for i, r in self.lines], ensure_ascii=False),
            "rule_location": self.rule_location, "profile": self.profile, "shadow": self.shadow,
            "exemption": self.exemption,
        }


FINDING_FIELDS = tuple(f.name for f in fields(Finding))
_new = object.__new__


def new_finding(values: dict) -> Finding:
    """A Finding from a dict of every field. The same object the constructor makes, without its 27
    frozen-dataclass ``object.__setattr__`` calls (several microseconds: the inline screener's budget)."""
    f = _new(Finding)
    f.__dict__.update(values)
    return f


def finding_id(rule_code: str, point: str, line_id: str, mdtrt_id) -> str:
    """Deterministic: the same finding gets the same id from every executor and every rerun."""
    raw = f"{rule_code}\x1f{point}\x1f{mdtrt_id}\x1f{line_id}".encode()
    return hashlib.sha1(raw).hexdigest()[:16]


def screen_response(findings: list, ruleset, executor: str, elapsed_us: float) -> dict:
    """The answer to a screening request: violations as 3101 ``result[]``, undecidable checks apart."""
    shown = [f for f in findings if not f.shadow and f.exemption is None]
    return {
        "result": [to_3101_result(f) for f in shown if f.outcome == VIOLATION],
        "shadow": [{"jr_id": f.finding_id, "rule_id": f.rule_code, "rx_id": f.line_id, "outcome": f.outcome}
                   for f in findings if f.shadow],
        "exempted": [{"jr_id": f.finding_id, "rule_id": f.rule_code, "rx_id": f.line_id, "exemption": f.exemption}
                     for f in findings if f.exemption is not None and not f.shadow],
        "insufficient_data": [insufficient_entry(f) for f in shown if f.outcome == INSUFFICIENT],
        "ruleset": {"name": ruleset.name, "version": ruleset.version},
        "engine": {"executor": executor, "elapsed_us": round(elapsed_us, 1)},
    }


def respond(results: list, insufficient: list, ruleset, executor: str, elapsed_us: float) -> dict:
    """``screen_response`` when no profile is in force (nothing shadowed or exempted), from entries already in
    their 3101 shape: ``results`` as ``to_3101_result`` gives them, ``insufficient`` as ``insufficient_entry``."""
    return {
        "result": results, "shadow": [], "exempted": [], "insufficient_data": insufficient,
        "ruleset": {"name": ruleset.name, "version": ruleset.version},
        "engine": {"executor": executor, "elapsed_us": round(elapsed_us, 1)},
    }


def insufficient_entry(f) -> dict:
    """One entry of the response's ``insufficient_data[]`` (a Finding or inline_render.BriefInsufficient)."""
    return {"rule_id": f.rule_code, "rule_name": f.rule_name, "rx_id": f.line_id, "reason": f.reason}


def to_3101_result(f: Finding) -> dict:
    """One entry of the national pre-audit response ``result[]`` (plus our explanation fields)."""
    kp = f.knowledge
    evidence = "；".join([f"{k}={v}" for k, v in f.evidence])
    knowledge = None
    if kp is not None:
        _, head, shown = _knowledge_parts(kp)
        evidence, knowledge = head + evidence, dict(shown)
    return {
        "jr_id": f.finding_id,
        "rule_id": f.rule_code,
        "rule_name": f.rule_name,
        "vola_cont": f.message,
        "sev_deg": SEVERITY_DEGREE[f.severity],
        "severity": f.severity,
        "result_type": f.result_type,
        "vola_evid": evidence[:500],
        "vola_bhvr_type": f.rule_class,
        "vola_amt": f.amount,
        "vola_amt_stas": f.amount_formula,
        "rule_version": f.rule_version,
        "knowledge": knowledge,
        "judge_result_detail_dtos": [{"rx_id": i, "vola_item_type": str(r)} for i, r in f.lines],
    }


_KNOWLEDGE_PARTS: dict = {}  # id(point) -> (point, evidence head, knowledge entry); holding it keeps the id


def evidence_parts(kp: KnowledgePoint | None) -> tuple:
    """(evidence head, ``knowledge`` entry) of a result citing ``kp`` ("" and None without one): a renderer
    that builds results directly (inline_render) keeps them per knowledge row and copies the entry."""
    if kp is None:
        return "", None
    return _evidence_head(kp), {"table": kp.table, "key": kp.key, "file_row": kp.file_row, "point_id": kp.point_id,
                                "text": kp.text, "source": kp.source}


def _evidence_head(kp: KnowledgePoint) -> str:
    return f"依据：{kp.text}" + (f"（{kp.source}）" if kp.source else "") + "；" if kp.text else ""


def _knowledge_parts(kp: KnowledgePoint) -> tuple:
    """What every result citing a knowledge point shows of it: the evidence head (依据：text（source）；)
    and the ``knowledge`` entry. Knowledge points are immutable and few: made once each."""
    got = _KNOWLEDGE_PARTS.get(id(kp))
    if got is None or got[0] is not kp:
        head, shown = evidence_parts(kp)
        if len(_KNOWLEDGE_PARTS) >= 100_000:
            _KNOWLEDGE_PARTS.clear()
        got = _KNOWLEDGE_PARTS[id(kp)] = (kp, head, shown)
    return got


_attr = operator.attrgetter
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False) without its per-call setup


def _json_encoder():
    """``_json`` for many objects: the C encoder ``JSONEncoder.encode`` makes on every call, made once (the same
    text: ensure_ascii off, default separators); ``_json`` itself where CPython's C encoder is missing."""
    try:
        from json.encoder import c_make_encoder, encode_basestring
    except ImportError:
        return _json
    if c_make_encoder is None:
        return _json
    encoder = json.JSONEncoder(ensure_ascii=False)
    make = c_make_encoder(None, encoder.default, encode_basestring, None, ": ", ", ", False, False, True)
    return lambda value: "".join(make(value, 0))


_json_many = _json_encoder()
# attributes read straight off each finding, in one pass over the findings (a pass per column walked every
# finding again: three times slower for an audit's hundreds of thousands, which are cold in memory)
_PLAIN = tuple(n for n in ("finding_id outcome rule_code rule_name rule_class rule_version result_type severity "
                           "message mdtrt_id psn_no fixmedins_code bilg_dept_codg bilg_dr_codg med_list_codg "
                           "service_date amount amount_formula reason rule_location profile shadow exemption").split())


def findings_table(findings: list):
    """The findings as an Arrow table of FINDING_SCHEMA: the table ``pa.Table.from_pylist([f.to_record() for f in
    findings], schema=FINDING_SCHEMA)`` gives, without a dict per finding (an audit writes millions)."""
    with no_cyclic_gc():  # a column per field of every finding: see dsl/parse.py
        return _findings_table(findings)


def _findings_table(findings: list):
    import pyarrow as pa
    plain = dict(zip(_PLAIN, zip(*map(_attr(*_PLAIN), findings)))) if findings else dict.fromkeys(_PLAIN, ())
    kps = [f.knowledge for f in findings]
    columns = {}
    for name in FINDING_SCHEMA.names:
        if name in plain:
            values = plain[name]
        elif name == "feedetl_sn":
            values = list(map(_attr("line_id"), findings))
        elif name.startswith("knowledge_"):
            attr = _KNOWLEDGE_COLUMNS[name]
            values = [getattr(k, attr) if k is not None else None for k in kps]
        elif name == "evidence":
            values = [_json_many(dict(f.evidence)) for f in findings]
        elif name == "involved_lines":
            values = [_involved_json(f.lines) for f in findings]
        else:
            raise AssertionError(f"FINDING_SCHEMA column {name} has no source")
        columns[name] = pa.array(values, FINDING_SCHEMA.field(name).type)
    return pa.table(columns, schema=FINDING_SCHEMA)


_KNOWLEDGE_COLUMNS = {"knowledge_table": "table", "knowledge_key": "key", "knowledge_row": "file_row",
                      "knowledge_id": "point_id", "knowledge_text": "text", "knowledge_source": "source"}


def _involved_json(lines: tuple) -> str:
    if len(lines) == 1:  # the usual: the violating line alone
        line_id, role = lines[0]
        return f'[{{"feedetl_sn": {_json_many(line_id)}, "role": {_json_many(role)}}}]'
    return _json_many([{"feedetl_sn": i, "role": r} for i, r in lines])


def _schema():
    import pyarrow as pa
    s, i, f = pa.string(), pa.int64(), pa.float64()
    types = {"knowledge_row": i, "amount": f, "shadow": pa.bool_()}
    names = ("finding_id outcome rule_code rule_name rule_class rule_version result_type severity message feedetl_sn "
             "mdtrt_id psn_no fixmedins_code bilg_dept_codg bilg_dr_codg med_list_codg service_date knowledge_table "
             "knowledge_key knowledge_row knowledge_id knowledge_text knowledge_source evidence amount amount_formula "
             "reason involved_lines rule_location profile shadow exemption").split()
    return pa.schema([(n, types.get(n, s)) for n in names])


FINDING_SCHEMA = _schema()
