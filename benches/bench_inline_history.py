"""Benchmark: inline screening of a 10-line prescription sent with 40 history lines (事前/事中).

Each request is one patient: 40 history lines over four earlier encounters in the last 60 days
(``curr_drord_flag`` 0: looked at, never flagged) and 10 current lines. Codes are drawn from the
ruleset's knowledge tables (both sides of pair tables), so cross-line rules have work to do. Reports,
over R timed calls after warm-up (gc.freeze() as an embedding service would do after load):

  engine_p50_us / engine_p99_us       Screener.screen_lines(typed lines, current ids): line-level and
                                      cross-line rules, findings rendered
  interface_p50_us / _p99_us          Screener.screen(request): the whole call a prescribing system makes, the
                                      same lines sent as a 3101 request (five encounters, 50 orders, history
                                      ones with curr_drord_flag 0; the fields the interface names, so no
                                      prd_days), each request decoded from its JSON text just
                                      before the call (untimed, as a service receives it): request mapping,
                                      decisions, findings and the 3101 response
  steady_p50_us / steady_p99_us       each request's fastest of --passes back-to-back calls, percentiles
                                      over the requests: the cost of the code without the interruptions
                                      of a shared box (which dominate engine_p99_us there)
  quiet_p50_us / quiet_p99_us         the same calls, over the requests that raise no finding
  cross_decisions_p50_us / _p99_us    the cross-line rules' decisions alone (engine/inline_cross.py: the
                                      request indexed, every current line decided), nothing rendered
  cross_render_us_per_finding         rendering one cross-line finding (engine/inline_cross_render.py; a
                                      pair's partners listed in full), each hit rendered once
  cross_compiled / cross_fallbacks    cross-line rules compiled / left to the reference
  reference_p50_us / reference_p99_us the reference interpreter on the same lines
  constant_p50_us / constant_p99_us   a constant pure-Python workload (sum(range(2000))) timed in the same run:
                                      what this box's interruptions alone make of a call that never varies

The last line on stdout is one JSON object.

Example:
  python benches/bench_inline_history.py --rules rulesets/demo_history
  python benches/bench_inline_history.py --rules benches/out/history_ruleset   # gen_history.py
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import random
import statistics
import sys
import time

from claimaudit.connectors.request import request_lines as general_mapping
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine.inline import Screener
from claimaudit.engine.reference import ReferenceEngine


def knowledge_codes(ruleset) -> list[str]:
    """Full-length codes whose prefixes are knowledge keys (pair partners included)."""
    codes = []
    for t in ruleset.tables.values():
        for col in (t.key, t.partner):
            if col is None:
                continue
            for row in t.rows[:2000]:
                v = row.get(col)
                for k in (v if isinstance(v, tuple) else (v,)):
                    if k:
                        codes.append(k + "0" * max(0, 23 - len(k)) if k.startswith("X") else k)
    return codes or ["XA10BAE098A001010102233"]


def request_lines(rng: random.Random, codes: list, n_history: int, n_current: int, i: int):
    base = {name: None for name in CLAIM_FIELDS}
    psn = f"P{i}"
    today = dt.datetime(2025, 6, 30, 9, 0)
    lines = []
    for j in range(n_history + n_current):
        current = j >= n_history
        enc = 4 if current else j * 4 // max(n_history, 1)
        when = today if current else today - dt.timedelta(days=60 - enc * 14, hours=-j)
        code = rng.choice(codes)
        line = dict(base, psn_no=psn, gend=rng.choice("12"), brdy=dt.date(1960, 1, 1), mdtrt_id=f"{psn}-E{enc}",
                    med_type="11", fixmedins_code="H1", begntime=when, fee_ocur_time=when, feedetl_sn=f"{psn}-{j}",
                    rxno=f"{psn}-RX{enc}", med_list_codg=code, hilist_name=code[:10],
                    list_type="102" if code.startswith("T") else ("201" if code[0].isdigit() else "101"),
                    cnt=1.0, pric=20.0, det_item_fee_sumamt=20.0, inscp_scp_amt=20.0, prd_days=7.0,
                    dscg_maindiag_code="I10.x00")
        lines.append(line)
    current = {l["feedetl_sn"] for l in lines[n_history:]}
    return lines, current


def _iso(v):
    return None if v is None else (v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat())


def as_3101(lines: list, current: set) -> dict:
    """The request's lines as a 3101 request: one patient, an encounter per mdtrt_id, an order per line."""
    encounters: dict = {}
    for line in lines:
        encounters.setdefault(line["mdtrt_id"], []).append(line)
    first = lines[0]
    return {"patient_dtos": [{
        "patn_id": first["psn_no"], "gend": first["gend"], "brdy": _iso(first["brdy"]),
        "fsi_encounter_dtos": [{
            "mdtrt_id": mdtrt_id, "medins_id": ls[0]["fixmedins_code"], "med_type": ls[0]["med_type"],
            "adm_date": _iso(ls[0]["begntime"]), "dscg_date": _iso(ls[0].get("endtime")),
            "dscg_main_dise_codg": ls[0]["dscg_maindiag_code"],
            "fsi_diagnose_dtos": [{"dise_codg": ls[0]["dscg_maindiag_code"], "maindise_flag": "1"}],
            "fsi_order_dtos": [{
                "rx_id": l["feedetl_sn"], "rxno": l["rxno"], "hilist_code": l["med_list_codg"],
                "hilist_name": l["hilist_name"], "hilist_type": l["list_type"], "cnt": l["cnt"], "pric": l["pric"],
                "sumamt": l["det_item_fee_sumamt"], "drord_begn_date": _iso(l["fee_ocur_time"]),
                "curr_drord_flag": "1" if l["feedetl_sn"] in current else "0"}
                for l in ls]} for mdtrt_id, ls in encounters.items()]}]}


def timed_interface(screener, texts: list, repeats: int) -> list:
    """screen(request) per call, each request decoded from its JSON text just before (untimed)."""
    out = []
    for k in range(repeats):
        request = json.loads(texts[k % len(texts)])
        t0 = time.perf_counter()
        screener.screen(request)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def constant_work(_lines, _current) -> int:
    """A call that never varies: its spread is the box's, not the code's."""
    return sum(range(2000))


def percentiles(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def timed(fn, items, repeats):
    out = []
    for k in range(repeats):
        lines, current = items[k % len(items)]
        t0 = time.perf_counter()
        fn(lines, current)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def steady(fn, items, passes):
    """Each request's fastest of ``passes`` back-to-back calls (µs)."""
    out = []
    for lines, current in items:
        best = None
        for _ in range(passes):
            t0 = time.perf_counter()
            fn(lines, current)
            t = time.perf_counter() - t0
            best = t if best is None or t < best else best
        out.append(best * 1e6)
    return out


def cross_decisions(screener, lines, current) -> list:
    """The cross-line hits of one request (decided, not rendered), with the request they belong to."""
    req = screener.cross.request(lines, None)
    return [(req, hit) for line in lines if line["feedetl_sn"] in current for hit in req.decisions(line)]


def render_time_per_finding(items) -> float:
    """Mean time to render one cross-line hit (hits decided beforehand: rendering alone is timed)."""
    total, n = 0.0, 0
    for hits in items:
        t0 = time.perf_counter()
        for req, hit in hits:
            req.render(hit)
        total += time.perf_counter() - t0
        n += len(hits)
    return total / n * 1e6 if n else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default="rulesets/demo_history", help="ruleset directory or compiled bundle")
    ap.add_argument("--history", type=int, default=40, help="history lines per request (default 40)")
    ap.add_argument("--lines", type=int, default=10, help="current lines per request (default 10)")
    ap.add_argument("--requests", type=int, default=300, help="distinct requests (default 300)")
    ap.add_argument("--repeats", type=int, default=5000, help="timed calls per measure (default 5000)")
    ap.add_argument("--passes", type=int, default=5, help="calls per request for steady_* (default 5)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    screener = Screener.from_path(args.rules, stages=None)
    load_s = time.perf_counter() - t0
    rng = random.Random(20261122)
    codes = knowledge_codes(screener.ruleset)
    items = [request_lines(rng, codes, args.history, args.lines, i) for i in range(args.requests)]
    ref = ReferenceEngine(screener.ruleset)
    per_request = [len(screener.screen_lines(lines, cur)) for lines, cur in items]
    findings = sum(per_request)
    for lines, cur in items:  # the executors agree on every request before anything is timed
        a = sorted(f.key() for f in screener.screen_lines(lines, cur))
        b = sorted(f.key() for f in ref.run(lines, current=lambda l, cur=cur: l["feedetl_sn"] in cur))
        if a != b:
            sys.exit(f"inline and reference disagree on request {lines[0]['psn_no']}")
    texts = [json.dumps(as_3101(lines, cur), ensure_ascii=False) for lines, cur in items]
    for k, text in enumerate(texts):  # the interface finds what the reference finds on every field of the request
        response = screener.screen(json.loads(text))
        full = general_mapping(json.loads(text))
        want = list(ref.run(full.lines, current=lambda l, cur=full.current: l["feedetl_sn"] in cur))
        if sorted(e["jr_id"] for e in response["result"]) != sorted(f.finding_id for f in want
                                                                     if f.outcome == "violation"):
            sys.exit(f"screen(request) and the reference disagree on request {k}")
    gc.collect()
    gc.freeze()
    engine = timed(lambda lines, cur: screener.screen_lines(lines, cur), items, args.repeats)
    steady_engine = steady(lambda lines, cur: screener.screen_lines(lines, cur), items, args.passes)
    quiet_items = [it for it, n in zip(items, per_request) if n == 0]
    quiet = timed(lambda lines, cur: screener.screen_lines(lines, cur), quiet_items, args.repeats) if quiet_items \
        else [0.0]
    interface = timed_interface(screener, texts, args.repeats)
    constant = timed(constant_work, items, args.repeats)
    decisions = timed(lambda lines, cur: cross_decisions(screener, lines, cur), items, args.repeats)
    per_finding = render_time_per_finding([cross_decisions(screener, lines, cur) for lines, cur in items])
    reference = timed(lambda lines, cur: list(ref.run(lines, current=lambda l: l["feedetl_sn"] in cur)), items,
                      max(args.repeats // 5, 200))
    e50, e99 = percentiles(engine)
    s50, s99 = percentiles(steady_engine)
    q50, q99 = percentiles(quiet)
    i50, i99 = percentiles(interface)
    c50, c99 = percentiles(constant)
    d50, d99 = percentiles(decisions)
    r50, r99 = percentiles(reference)
    result = {"benchmark": "inline_history", "date": dt.date.today().isoformat(), "machine": platform.machine(),
              "python": platform.python_version(), "rules": args.rules, "ruleset_rules": len(screener.ruleset.rules),
              "history_lines": args.history, "current_lines": args.lines, "requests": args.requests,
              "findings_per_request": round(findings / len(items), 2), "load_s": round(load_s, 3),
              "engine_p50_us": round(e50, 1), "engine_p99_us": round(e99, 1),
              "steady_p50_us": round(s50, 1), "steady_p99_us": round(s99, 1),
              "interface_p50_us": round(i50, 1), "interface_p99_us": round(i99, 1),
              "constant_p50_us": round(c50, 1), "constant_p99_us": round(c99, 1),
              "quiet_requests": len(quiet_items), "quiet_p50_us": round(q50, 1), "quiet_p99_us": round(q99, 1),
              "cross_decisions_p50_us": round(d50, 1), "cross_decisions_p99_us": round(d99, 1),
              "cross_render_us_per_finding": round(per_finding, 1),
              "cross_compiled": len(screener.cross.compiled), "cross_fallbacks": len(screener.cross.fallbacks),
              "reference_p50_us": round(r50, 1), "reference_p99_us": round(r99, 1)}
    print(f"load {load_s:.2f}s; {result['findings_per_request']} findings/request; engine p50 {e50:.0f} µs "
          f"p99 {e99:.0f} µs (steady p50 {s50:.0f} p99 {s99:.0f}; no findings: p50 {q50:.0f} p99 {q99:.0f}); "
          f"screen(request) p50 {i50:.0f} p99 {i99:.0f} µs; "
          f"cross-line decisions p50 {d50:.0f} "
          f"p99 {d99:.0f} µs, {per_finding:.0f} µs per cross-line finding rendered; reference p50 {r50:.0f} µs "
          f"p99 {r99:.0f} µs")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
