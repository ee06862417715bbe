"""Benchmark: inline screening of one prescription (事前/事中), in process, after load.

Builds 3101-shaped requests of N order lines (default 10) from a claims Parquet file (gen_claims.py)
and screens them with ``Screener`` over a ruleset (gen_knowledge.py) or a compiled bundle. Reports,
over R timed calls (after warm-up, with gc.freeze() as an embedding service would do after load):

  screen_p50_us / screen_p99_us   Screener.screen(request dict): request mapping + index lookups +
                                  template evaluation + rendering of the findings (the whole call)
  steady_p50_us / steady_p99_us   each request's fastest of --passes back-to-back screen() calls,
                                  percentiles over the requests: what the code costs per request without
                                  the interruptions of a shared box (which dominate screen_p99_us there)
  and its parts, each timed alone on the same requests:
  map_p50_us / map_p99_us         the request mapping (RequestMapper.request: dict -> typed lines)
  decide_p50_us / decide_p99_us   candidates + template evaluation of every current line (no rendering)
  render_p50_us / render_p99_us   rendering the decided hits as screen() does + the 3101 response
  engine_p50_us / engine_p99_us   Screener.screen_lines(typed lines): decisions + full findings
  plain_loop_p50_us / _p99_us     the peer: a hand-written dict-of-records loop over the same five rule
                                  types (no three-valued logic, no rendering), on the same lines
  constant_p50_us / _p99_us       a constant pure-Python workload (sum(range(2000))) timed in the same run:
                                  what this box's interruptions alone make of a call that never varies
  reference_p50_us / _p99_us      the reference interpreter on the same typed lines

and the ratio reference / engine. The last line on stdout is one JSON object.

Example:
  python benches/gen_knowledge.py --instances 50000 -o benches/out/ruleset_50000
  python benches/gen_claims.py --lines 200000 -o benches/out/claims_200k.parquet
  python benches/bench_inline.py --rules benches/out/ruleset_50000 --claims benches/out/claims_200k.parquet
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from claimaudit.connectors.request import request_lines
from claimaudit.engine.findings import respond, screen_response
from claimaudit.engine.inline import Screener
from claimaudit.engine.reference import ReferenceEngine


def _iso(v):
    return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else (v.isoformat() if isinstance(v, dt.date) else v)


def build_requests(claims: Path, lines_per_request: int, count: int) -> list[dict]:
    """Prescriptions of the claims file with at least N lines, cut to N, as 3101 requests."""
    table = pq.read_table(claims)
    table = table.slice(0, min(table.num_rows, 400_000))
    rx = table.column("rxno")
    counts = pc.value_counts(rx).to_pylist()
    big = {c["values"] for c in counts if c["counts"] >= lines_per_request}
    rows = [r for r in table.to_pylist() if r["rxno"] in big]
    by_rx: dict = {}
    for r in rows:
        by_rx.setdefault(r["rxno"], []).append(r)
    requests = []
    for rxno, lines in list(by_rx.items())[:count]:
        first = lines[0]
        diags = [d for d in str(first.get("diag_codes") or "").split(";") if d]
        orders = [{
            "rx_id": l["feedetl_sn"], "rxno": rxno, "hilist_code": l["med_list_codg"], "hilist_name": l.get("hilist_name"),
            "cnt": l["cnt"], "pric": l["pric"], "sumamt": l["det_item_fee_sumamt"],
            "drord_begn_date": _iso(l["fee_ocur_time"]), "sin_dos_dscr": l.get("sin_dos_dscr"),
            "used_frqu_dscr": l.get("used_frqu_dscr"), "prd_days": l.get("prd_days"),
            "hosp_appr_flag": l.get("hosp_appr_flag"), "curr_drord_flag": "1",
        } for l in lines[:lines_per_request]]
        requests.append({"patient_dtos": [{
            "patn_id": first["psn_no"], "gend": first["gend"], "brdy": _iso(first["brdy"]),
            "fsi_encounter_dtos": [{
                "mdtrt_id": first["mdtrt_id"], "medins_id": first.get("fixmedins_code"), "medins_lv": first.get("hosp_lv"),
                "med_type": first.get("med_type"), "insutype": first.get("insutype"), "adm_date": _iso(first.get("begntime")),
                "dscg_main_dise_codg": first.get("dscg_maindiag_code"),
                "fsi_diagnose_dtos": [{"dise_codg": d, "maindise_flag": "1" if i == 0 else "0"} for i, d in enumerate(diags)],
                "fsi_order_dtos": orders}]}]})
    return requests


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1e6, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6


def timed(fn, items, repeats: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for i in range(repeats):
        item = items[i % len(items)]
        t = clock()
        fn(item)
        out.append(clock() - t)
    return out


def steady(fn, items, passes: int) -> list[float]:
    """Each item's fastest of ``passes`` back-to-back calls (seconds)."""
    clock, out = time.perf_counter, []
    for item in items:
        best = None
        for _ in range(passes):
            t = clock()
            fn(item)
            t = clock() - t
            best = t if best is None or t < best else best
        out.append(best)
    return out


def plain_loop_peer(ruleset):
    """The peer: a hand-written dict-of-records loop for the five rule types of gen_knowledge.py —
    no three-valued logic, no messages, no evidence; only "which (line, rule) trips". It bounds what
    any Python evaluation of these rules can cost on this machine (dose and frequency texts are parsed
    once each: the parsers remember them)."""
    from claimaudit.dsl.units import parse_frequency, parse_quantity
    from claimaudit.engine.values import age_years

    def index(name):
        t = ruleset.tables[name]
        out = {}
        for row in t.rows:
            out.setdefault(row[t.key], []).append(row)
        return out
    dose, age, sex, cnt, ind = (index(n) for n in ("drug_max_dose", "drug_age_range", "drug_sex", "drug_max_cnt",
                                                    "drug_indication"))

    def screen(lines):
        hits = 0
        for line in lines:
            key = line["med_list_codg"][:10]
            day = line["fee_ocur_time"].date() if line.get("fee_ocur_time") else None
            for row in sex.get(key, ()):
                hits += line.get("gend") in ("1", "2") and line["gend"] != row["gend"]
            for row in age.get(key, ()):
                if day and line.get("brdy"):
                    a = age_years(line["brdy"], day)
                    hits += a < (row["min_age"] or 0) or a > (row["max_age"] or 200)
            for row in dose.get(key, ()):
                q, f = parse_quantity(line.get("sin_dos_dscr") or ""), parse_frequency(line.get("used_frqu_dscr"))
                if q is not None and f is not None and q.dimension == row["max_daily_dose"].dimension:
                    hits += q.base_value * f > row["max_daily_dose"].base_value
            for row in cnt.get(key, ()):
                if line.get("prd_days"):
                    hits += line["cnt"] / line["prd_days"] > row["max_daily_cnt"]
            for row in ind.get(key, ()):
                codes = [c for c in (line.get("dscg_maindiag_code"), *(line.get("diag_codes") or ())) if c]
                hits += not any(c.startswith(tuple(row["diag_prefixes"])) for c in codes) and \
                    line.get("hosp_appr_flag") != "1"
        return hits
    return screen


def constant_work(_request) -> int:
    """A call that never varies: its spread is the box's, not the code's."""
    return sum(range(2000))


def _identity(record: dict) -> tuple:
    return record["finding_id"], record["outcome"]


def decided(screener, typed: list) -> list:
    """Each request with its decisions, as screen() has them before rendering."""
    return [(r, screener.decisions.decide_lines(r.lines, r.current)) for r in typed]


def render_and_respond(screener):
    """What screen() does after deciding: render the hits and build the 3101 response (directly, with no
    profile: Screener.entries). Each call starts from the derived values the decisions left (a copy)."""
    ruleset = screener.ruleset

    def run(item):
        req, hits_by_line = item
        decided = {i: (dict(lv), hits) for i, (lv, hits) in hits_by_line.items()}
        if ruleset.profile is None:
            return respond(*screener.entries(req.lines, req.current, decided), ruleset, "inline", 0.0)
        findings = []
        for i, (lv, hits) in decided.items():
            findings.extend(screener._render_hits(req.lines[i], lv, hits, None, False))
        return screen_response(findings, ruleset, "inline", 0.0)
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", required=True, help="ruleset directory or compiled bundle")
    ap.add_argument("--claims", required=True, help="claims Parquet (gen_claims.py) to take prescriptions from")
    ap.add_argument("--lines", type=int, default=10, help="order lines per request (default 10)")
    ap.add_argument("--requests", type=int, default=500, help="distinct requests to cycle through (default 500)")
    ap.add_argument("--repeats", type=int, default=20000, help="timed calls per measure (default 20000)")
    ap.add_argument("--passes", type=int, default=5, help="calls per request for steady_* (default 5)")
    a = ap.parse_args(argv)

    started = time.perf_counter()
    screener = Screener.from_path(a.rules, stages=None)
    load_s = time.perf_counter() - started
    requests = build_requests(Path(a.claims), a.lines, a.requests)
    if not requests:
        sys.exit(f"no prescription with {a.lines} lines in {a.claims}")
    typed = [request_lines(r, screener.fields) for r in requests]
    reference = ReferenceEngine(screener.ruleset)
    # the answers must agree, every field of every finding, before anything is timed
    for req in typed[:100]:
        got = sorted((f.to_record() for f in screener.screen_lines(req.lines, req.current)), key=_identity)
        want = sorted((f.to_record() for f in reference.run(req.lines)), key=_identity)
        assert got == want, "inline and reference disagree"
    findings_per_request = statistics.mean(len(screener.screen_lines(r.lines, r.current)) for r in typed)
    for r in requests[:200]:
        screener.screen(r)  # warm-up
    gc.collect()
    gc.freeze()
    s50, s99 = percentiles(timed(screener.screen, requests, a.repeats))
    steady50, steady99 = percentiles(steady(screener.screen, requests, a.passes))
    parts = {"map": percentiles(timed(screener.mapper.request, requests, a.repeats)),
             "decide": percentiles(timed(lambda r: screener.decisions.decide_lines(r.lines, r.current), typed,
                                         a.repeats)),
             "render": percentiles(timed(render_and_respond(screener), decided(screener, typed), a.repeats))}
    e50, e99 = percentiles(timed(lambda r: screener.screen_lines(r.lines, r.current), typed, a.repeats))
    r50, r99 = percentiles(timed(lambda r: list(reference.run(r.lines)), typed, max(a.repeats // 10, 200)))
    peer = None
    if {"drug_max_dose", "drug_age_range", "drug_sex", "drug_max_cnt", "drug_indication"} <= set(screener.ruleset.tables):
        loop = plain_loop_peer(screener.ruleset)
        peer = percentiles(timed(lambda r: loop(r.lines), typed, a.repeats))
    constant = percentiles(timed(constant_work, typed, a.repeats))
    result = {
        "benchmark": "inline_screen", "date": dt.date.today().isoformat(), "python": platform.python_version(),
        "rules": len(screener.ruleset.rules), "parameter_rows": sum(len(f) for f in screener.plan.families),
        "lines_per_request": a.lines, "requests": len(requests), "repeats": a.repeats,
        "findings_per_request": round(findings_per_request, 2), "load_s": round(load_s, 3),
        "screen_p50_us": round(s50, 1), "screen_p99_us": round(s99, 1),
        "steady_p50_us": round(steady50, 1), "steady_p99_us": round(steady99, 1),
        **{f"{name}_p{q}_us": round(v, 1) for name, (p50, p99) in parts.items() for q, v in ((50, p50), (99, p99))},
        "engine_p50_us": round(e50, 1), "engine_p99_us": round(e99, 1),
        "reference_p50_us": round(r50, 1), "reference_p99_us": round(r99, 1),
        "ratio_reference_over_engine_p50": round(r50 / e50, 2) if e50 else None,
        "constant_p50_us": round(constant[0], 1), "constant_p99_us": round(constant[1], 1),
    }
    if peer:
        result.update({"plain_loop_p50_us": round(peer[0], 1), "plain_loop_p99_us": round(peer[1], 1)})
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
