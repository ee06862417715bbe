#!/usr/bin/env python3
"""Benchmark: batch audit with cross-line (history) rules, claimaudit's batch executor side by side with
DuckDB.

Rules (gen_history.py): 2,000 drug-interaction pairs (pair ... within day unordered), 900 service-item
pairs (pair ... within day, ordered), a 30-day rolling per-patient frequency rule (window same k within
patient rolling 30 days, w.count > k.max_times) and a payment-course rule (window same k within patient,
w.span_days > k.max_days). Claims: gen_claims.py --history (per-patient histories over a year, several
institutions, service items and drugs, prescriptions billed at one time, 0.3% lines without a time).

Each measurement runs in a fresh subprocess with one thread (OMP_NUM_THREADS=1, POLARS_MAX_THREADS=1,
pyarrow.set_cpu_count(1) and set_io_thread_count(1), DuckDB SET threads = 1) and starts from the Parquet
file on disk:

  claimaudit  pyarrow.parquet.read_table of the columns the rules read (BatchEngine.input_columns() plus
              the columns of the total order: psn_no, fee_ocur_time, mdtrt_id, feedetl_sn; text columns
              as dictionaries) + BatchEngine(build_plan(ruleset)).run_table(table, batch_rows=...)
  duckdb      benches/duckdb_history.py: one SQL query per rule type "the smart way" (joins to the
              knowledge tables on prefix / exact keys, semi-joins within (row, patient, day) for pairs,
              window functions with RANGE frames for the rolling count and the first-use span)

Both produce (line = row of the Parquet file, rule_code, knowledge_id, outcome, amount); the first run of
each is compared row for row and the benchmark fails if they differ. Figures: median seconds of --repeat
runs, lines per second, peak RSS of each engine's process, and the ratio duckdb / claimaudit.

The last line on stdout is one JSON object.

  python benches/gen_claims.py --history --lines 10000000 -o benches/out/hist_claims_10m.parquet
  python benches/gen_history.py --claims benches/out/hist_claims_10m.parquet -o benches/out/ruleset_history
  python benches/duckdb_history.py --claims benches/out/hist_claims_10m.parquet \\
      --rules benches/out/ruleset_history --verify              # the SQL agrees with the reference engine
  python benches/bench_history.py --claims benches/out/hist_claims_10m.parquet --rules benches/out/ruleset_history
  python benches/bench_history.py ... --batch-rows 100000      # the same run in batches of 100,000 lines
  python benches/bench_history.py ... --only duckdb            # the peer alone (no comparison)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER_COLUMNS = ["psn_no", "fee_ocur_time", "mdtrt_id", "feedetl_sn"]
# text columns read as dictionaries (as Parquet stores them), as in bench_batch.py; the line id is not
TEXT_COLUMNS = ["psn_no", "mdtrt_id", "med_list_codg", "hilist_name", "fixmedins_code", "rxno", "list_type", "med_type",
                "gend", "insutype", "hosp_lv", "sin_dos_dscr", "used_frqu_dscr", "bilg_dept_codg", "hosp_appr_flag",
                "vali_flag", "dscg_maindiag_code", "diag_codes"]
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _one_thread(threads: int) -> None:
    from claimaudit.engine.memory import advise_plain_pages
    advise_plain_pages()  # as `claimaudit audit` does (engine/memory.py)
    if threads == 1:
        import pyarrow as pa
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)


def run_claimaudit(claims: str, rules: str, threads: int, findings_out: str | None, batch_rows: int | None) -> dict:
    _one_thread(threads)
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.batch import BatchEngine
    from claimaudit.engine.plan import build_plan
    rs = load_ruleset(rules)
    if not rs.ok:
        raise SystemExit(rs.render_diagnostics())
    engine = BatchEngine(build_plan(rs))
    started = time.perf_counter()
    cpu0 = time.process_time()
    names = set(pq.read_schema(claims).names)
    wanted = sorted(c for c in set(engine.input_columns()) | set(ORDER_COLUMNS) if c in names)
    table = pq.read_table(claims, columns=wanted, read_dictionary=[c for c in TEXT_COLUMNS if c in wanted],
                          use_threads=threads != 1)
    read_s = time.perf_counter() - started
    hits, columns = engine.run_table(table, **({"batch_rows": batch_rows} if batch_rows else {}))
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    codes = [r.code for r in rs.rules]
    per_rule = Counter(f"{codes[r]}:{'violation' if o == 1 else 'insufficient_data'}"
                       for r, o in zip(hits.rule.tolist(), hits.outcome.tolist()))
    out = {"engine": "claimaudit", "seconds": total, "read_s": read_s, "engine_s": total - read_s, "cpu_s": cpu,
           "lines": table.num_rows, "hits": len(hits), "violations": int((hits.outcome == 1).sum()),
           "per_rule": dict(sorted(per_rule.items())), "quarantined": int(np.asarray(columns.bad).sum()),
           "batch_rows": batch_rows}
    if findings_out:
        ids_by_rule = {}
        for i, rule in enumerate(rs.rules):
            t = rs.tables[rule.lookup.table] if rule.lookup else None
            col = t.role_column("id") if t is not None else None
            ids_by_rule[i] = (t, col)
        ids = []
        for r, p in zip(hits.rule.tolist(), hits.point.tolist()):
            t, col = ids_by_rule[r]
            ids.append(t.rows[p][col] if col and p >= 0 else None)
        pq.write_table(pa.table({
            "line": pa.array(hits.line, pa.int64()),
            "rule_code": pa.array(np.array(codes, dtype=object)[hits.rule].tolist(), pa.string()),
            "knowledge_id": pa.array(ids, pa.string()),
            "outcome": pa.array(np.where(hits.outcome == 1, "violation", "insufficient_data").tolist(), pa.string()),
            "amount": pa.array(hits.amount, pa.float64(), mask=np.isnan(hits.amount)),
        }), findings_out)
    return out


def run_duckdb(claims: str, rules: str, threads: int, findings_out: str | None, batch_rows: int | None) -> dict:
    _one_thread(threads)
    sys.path.insert(0, str(HERE))
    from duckdb_history import HistoryBaseline, summarize
    cpu0 = time.process_time()
    started = time.perf_counter()
    b = HistoryBaseline(claims, rules, threads if threads == 1 else None)
    findings, times = b.run()
    total = time.perf_counter() - started
    out = {"engine": "duckdb", "seconds": total, "cpu_s": time.process_time() - cpu0, "hits": findings.num_rows,
           "violations": sum(1 for o in findings.column("outcome").to_pylist() if o == "violation"),
           "per_rule": summarize(findings), "seconds_by_query": {k: round(v, 3) for k, v in times.items()},
           "threads": b.threads}
    if findings_out:
        import pyarrow.parquet as pq
        pq.write_table(findings.select(["line", "rule_code", "knowledge_id", "outcome", "amount"]), findings_out)
    return out


def single(a) -> None:
    fn = run_claimaudit if a.single == "claimaudit" else run_duckdb
    out = fn(a.claims, a.rules, a.threads, a.findings_out, a.batch_rows)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, ensure_ascii=False))


def spawn(engine: str, a, findings_out: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--single", engine, "--claims", a.claims, "--rules", a.rules,
           "--threads", str(a.threads)]
    if a.batch_rows:
        cmd += ["--batch-rows", str(a.batch_rows)]
    if findings_out:
        cmd += ["--findings-out", findings_out]
    env = dict(os.environ, **ONE_THREAD_ENV) if a.threads == 1 else dict(os.environ)
    started = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(json.dumps({"error": f"{engine} did not finish within {a.timeout} s"}))
    if res.returncode != 0:
        raise SystemExit(f"{engine} failed after {time.perf_counter() - started:.1f} s:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"# {engine}: {out['seconds']:.2f} s, {out['hits']:,} hits, peak {out['peak_rss_mb']:.0f} MB, "
          f"loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    return out


def compare(ours: str, theirs: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    keys = ["line", "rule_code", "knowledge_id", "outcome"]

    def norm(path):
        t = pq.read_table(path).select(keys + ["amount"])
        t = t.set_column(t.schema.get_field_index("amount"), "amount", pc.round(t.column("amount"), 2))
        return t.sort_by([(k, "ascending") for k in keys + ["amount"]])
    a, b = norm(ours), norm(theirs)
    same = a.num_rows == b.num_rows and all(a.column(c).equals(b.column(c)) for c in keys + ["amount"])
    out = {"identical": bool(same), "claimaudit_rows": a.num_rows, "duckdb_rows": b.num_rows}
    if not same:  # say where
        ka = set(zip(*(a.column(c).to_pylist() for c in keys)))
        kb = set(zip(*(b.column(c).to_pylist() for c in keys)))
        out["only_claimaudit"] = sorted(ka - kb, key=str)[:20]
        out["only_duckdb"] = sorted(kb - ka, key=str)[:20]
        out["n_only_claimaudit"], out["n_only_duckdb"] = len(ka - kb), len(kb - ka)
    return out


def median_runs(engine: str, a, repeat: int) -> dict:
    return _as_timed(engine, *[spawn(engine, a) for _ in range(repeat)])


def _as_timed(engine: str, *runs) -> dict:
    out = {"first_run": runs[0], "median_s": round(statistics.median(r["seconds"] for r in runs), 3),
           "runs_s": [round(r["seconds"], 3) for r in runs],
           "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    if engine == "claimaudit":
        out["median_read_s"] = round(statistics.median(r["read_s"] for r in runs), 3)
        out["median_engine_s"] = round(statistics.median(r["engine_s"] for r in runs), 3)
    else:
        out["median_by_query_s"] = {k: round(statistics.median(r["seconds_by_query"][k] for r in runs), 3)
                                    for k in runs[0]["seconds_by_query"]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", required=True, help="claims Parquet from gen_claims.py --history")
    ap.add_argument("--rules", required=True, help="ruleset directory from gen_history.py")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each engine after the checked one (default 3; 0: report the checked run)")
    ap.add_argument("--threads", type=int, default=1, help="1 (default): one thread each; 0: each engine's default")
    ap.add_argument("--batch-rows", type=int, default=None,
                    help="claimaudit: lines per batch for run_table (default: the executor's own default)")
    ap.add_argument("--only", choices=["claimaudit", "duckdb"], help="time one engine alone (no comparison)")
    ap.add_argument("--timeout", type=float, default=None, help="give up on a run after this many seconds")
    ap.add_argument("--single", choices=["claimaudit", "duckdb"], help=argparse.SUPPRESS)
    ap.add_argument("--findings-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.single:
        return single(a)

    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    ours_f, theirs_f = str(out_dir / "bench_history_claimaudit.parquet"), str(out_dir / "bench_history_duckdb.parquet")
    load_before = os.getloadavg()
    result = {"benchmark": "history_batch_audit", "date": dt.date.today().isoformat(), "python": platform.python_version(),
              "claims": a.claims, "rules": a.rules, "threads": a.threads or "default", "batch_rows": a.batch_rows}
    first = {}
    if a.only is None:  # one run each, findings written and compared row for row, then the timed runs
        for engine in ("claimaudit", "duckdb"):
            first[engine] = spawn(engine, a, ours_f if engine == "claimaudit" else theirs_f)
        agreement = compare(ours_f, theirs_f)
        result["agreement"] = agreement
        if not agreement["identical"]:
            print(json.dumps({"error": "findings differ", **result}, ensure_ascii=False, default=str))
            sys.exit(1)
    if a.repeat > 0:
        timed = {e: median_runs(e, a, a.repeat) for e in ("claimaudit", "duckdb") if a.only in (None, e)}
    else:  # --repeat 0: the checked runs are the figures (e.g. a check at small --batch-rows)
        if a.only:
            first[a.only] = spawn(a.only, a)
        timed = {e: _as_timed(e, r) for e, r in first.items()}
    for e, t in timed.items():
        first.setdefault(e, t.pop("first_run"))
        t.pop("first_run", None)
    ref = first.get("claimaudit") or first["duckdb"]
    lines = first["claimaudit"]["lines"] if "claimaudit" in first else _rows(a.claims)
    result.update({"lines": lines, "hits": ref["hits"], "violations": ref["violations"], "per_rule": ref["per_rule"],
                   **timed})
    if "claimaudit" in timed:
        result["seconds"] = timed["claimaudit"]["median_s"]
        result["lines_per_s"] = round(lines / timed["claimaudit"]["median_s"])
        result["peak_rss_mb"] = timed["claimaudit"]["peak_rss_mb"]
    if "duckdb" in timed:
        result["peer_seconds"] = timed["duckdb"]["median_s"]
        result["peer_lines_per_s"] = round(lines / timed["duckdb"]["median_s"])
        result["peer_peak_rss_mb"] = timed["duckdb"]["peak_rss_mb"]
    if len(timed) == 2:
        result["ratio_duckdb_over_claimaudit"] = round(timed["duckdb"]["median_s"] / timed["claimaudit"]["median_s"], 2)
    result["loadavg_before"], result["loadavg_after"] = load_before, os.getloadavg()
    print(json.dumps(result, ensure_ascii=False, default=str))


def _rows(path: str) -> int:
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    main()
