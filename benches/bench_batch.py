"""Benchmark: batch audit of a claims file, claimaudit's batch executor side by side with DuckDB.

Each measurement runs in a fresh subprocess (so peak memory is per engine) and starts from the
Parquet file on disk:

  claimaudit  pyarrow.parquet row groups of the columns the rules read (text columns as dictionaries,
              as Parquet stores them), about 1M lines at a time, each batch audited as it is read
              (BatchEngine.run_table: families over Arrow columns, hits with amounts); hits concatenated
  duckdb      benches/duckdb_baseline.py: one SQL query per rule type "the smart way", straight from
              Parquet, knowledge joined on the code prefix (the peer)

Both produce (feedetl_sn, rule_code, knowledge_id, outcome, amount); the first run of each is
compared row for row and the benchmark fails if they differ. Figures: median seconds of --repeat
runs with one thread each (pyarrow's CPU pool and DuckDB's threads set to 1), lines per second,
peak RSS, and the ratio duckdb / claimaudit. --scale also times claimaudit against rulesets of
1,000 / 10,000 / 50,000 knowledge rows on the same claims (the family cost should barely move).

The last line on stdout is one JSON object.

  python benches/gen_claims.py --lines 10000000 -o benches/out/claims_10m.parquet
  python benches/gen_knowledge.py --instances 50000 -o benches/out/ruleset_50000
  python benches/bench_batch.py --claims benches/out/claims_10m.parquet --rules benches/out/ruleset_50000
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
# text columns read as dictionaries (as Parquet stores them): codes, dose and frequency text, names,
# diagnoses — measured faster to read and to type than plain strings; the line id (all distinct) is not
TEXT_COLUMNS = ["gend", "insutype", "hosp_lv", "med_type", "med_list_codg", "list_type", "sin_dos_dscr",
                "used_frqu_dscr", "bilg_dept_codg", "hosp_appr_flag", "vali_flag", "dscg_maindiag_code",
                "hilist_name", "diag_codes"]


BATCH_ROWS = 1 << 20  # lines per read-and-audit step (BatchEngine.run_table's own batch size)


def _row_group_batches(pf, rows: int):
    """Consecutive row groups of ``pf``, grouped so that each read holds at most ``rows`` lines (a row group
    larger than that is read alone; run_table cuts it into batches itself)."""
    group, size = [], 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if group and size + n > rows:
            yield group
            group, size = [], 0
        group.append(i)
        size += n
    if group:
        yield group


def _one_thread(threads: int) -> None:
    from claimaudit.engine.memory import advise_plain_pages
    advise_plain_pages()  # as `claimaudit audit` does (engine/memory.py)
    if threads == 1:
        import pyarrow as pa
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)


def run_claimaudit(claims: str, rules: str, threads: int, findings_out: str | None) -> dict:
    _one_thread(threads)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.batch import BatchEngine, Hits
    from claimaudit.engine.plan import build_plan
    rs = load_ruleset(rules)
    engine = BatchEngine(build_plan(rs))
    started = time.perf_counter()
    cpu0 = time.process_time()
    pf = pq.ParquetFile(claims, read_dictionary=[c for c in TEXT_COLUMNS])
    names = set(pf.schema_arrow.names)
    wanted = [c for c in engine.input_columns() if c in names]  # projection, as DuckDB does
    # Row groups are read and audited a batch (about BATCH_ROWS lines) at a time, as a streaming reader
    # would: line-level rules carry no state between lines, and memory stays bounded by one batch.
    read_s, parts, sn_parts, start, quarantined = 0.0, [], [], 0, 0
    # cross-line rules see every batch of one run_table call: such a rule set is read whole
    steps = [list(range(pf.metadata.num_row_groups))] if getattr(engine, "cross_rules", None) else \
        _row_group_batches(pf, BATCH_ROWS)
    for groups in steps:
        t0 = time.perf_counter()
        table = pf.read_row_groups(groups, columns=wanted, use_threads=threads != 1)
        read_s += time.perf_counter() - t0
        hits, columns = engine.run_table(table)
        quarantined += int(columns.bad.sum())
        if findings_out:  # the line ids of the hits (outside the timed runs' needs, kept for the comparison)
            sn_parts.append(table.column("feedetl_sn").take(pa.array(hits.line)))
        hits.line += start
        start += table.num_rows
        parts.append(hits)
        del table, columns
    hits = Hits.concat(parts, ordered=True)  # batches follow line order
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    out = {"engine": "claimaudit", "seconds": total, "read_s": read_s, "engine_s": total - read_s, "cpu_s": cpu,
           "lines": start, "hits": len(hits), "violations": int((hits.outcome == 1).sum()),
           "quarantined": quarantined}
    if findings_out:
        import numpy as np
        rules_code = np.array([r.code for r in rs.rules], dtype=object)
        ids = []
        for r, p in zip(hits.rule.tolist(), hits.point.tolist()):
            rule = rs.rules[r]
            t = rs.tables[rule.lookup.table] if rule.lookup else None
            col = t.role_column("id") if t is not None else None
            ids.append(t.rows[p][col] if col and p >= 0 else None)
        pq.write_table(pa.table({
            "feedetl_sn": pa.chunked_array(sn_parts, pa.string()),
            "rule_code": pa.array(rules_code[hits.rule].tolist(), pa.string()),
            "knowledge_id": pa.array(ids, pa.string()),
            "outcome": pa.array(np.where(hits.outcome == 1, "violation", "insufficient_data").tolist(), pa.string()),
            "amount": pa.array(hits.amount, pa.float64(), mask=np.isnan(hits.amount)),
        }), findings_out)
    return out


def run_duckdb(claims: str, rules: str, threads: int, findings_out: str | None) -> dict:
    sys.path.insert(0, str(HERE))
    from duckdb_baseline import Baseline
    cpu0 = time.process_time()
    started = time.perf_counter()
    findings, times = Baseline(claims, rules, threads if threads == 1 else None).run()
    total = time.perf_counter() - started
    out = {"engine": "duckdb", "seconds": total, "cpu_s": time.process_time() - cpu0, "hits": findings.num_rows}
    if findings_out:
        import pyarrow.parquet as pq
        pq.write_table(findings.select(["feedetl_sn", "rule_code", "knowledge_id", "outcome", "amount"]), findings_out)
    return out


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. VmHWM belongs to the process's memory since its exec;
    ru_maxrss (the fallback) also counts the parent's at fork, e.g. the compared findings it held."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def single(a) -> None:
    fn = run_claimaudit if a.single == "claimaudit" else run_duckdb
    out = fn(a.claims, a.rules, a.threads, a.findings_out)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def spawn(engine: str, claims: str, rules: str, threads: int, findings_out: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--single", engine, "--claims", claims, "--rules", rules, "--threads", str(threads)]
    if findings_out:
        cmd += ["--findings-out", findings_out]
    env = dict(os.environ, OMP_NUM_THREADS="1") if threads == 1 else dict(os.environ)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(ours: str, theirs: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    keys = ["feedetl_sn", "rule_code", "knowledge_id", "outcome"]

    def norm(path):
        t = pq.read_table(path)
        t = t.set_column(t.schema.get_field_index("amount"), "amount", pc.round(t.column("amount"), 2))
        return t.sort_by([(k, "ascending") for k in keys + ["amount"]])
    a, b = norm(ours), norm(theirs)
    same = a.num_rows == b.num_rows and all(a.column(c).equals(b.column(c)) for c in keys + ["amount"])
    return {"identical": bool(same), "claimaudit_rows": a.num_rows, "duckdb_rows": b.num_rows}


def median_runs(engine, claims, rules, threads, repeat) -> dict:
    runs = [spawn(engine, claims, rules, threads) for _ in range(repeat)]
    med = statistics.median(r["seconds"] for r in runs)
    out = {"median_s": round(med, 3), "runs_s": [round(r["seconds"], 3) for r in runs],
           "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    if engine == "claimaudit":
        out["median_read_s"] = round(statistics.median(r["read_s"] for r in runs), 3)
        out["median_engine_s"] = round(statistics.median(r["engine_s"] for r in runs), 3)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", required=True)
    ap.add_argument("--rules", required=True, help="ruleset directory from gen_knowledge.py")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="1 (default): one thread each; 0: each engine's default")
    ap.add_argument("--scale", nargs="*", default=None,
                    help="ruleset directories of growing size to time claimaudit against (e.g. ruleset_1000 ...)")
    ap.add_argument("--single", choices=["claimaudit", "duckdb"], help=argparse.SUPPRESS)
    ap.add_argument("--findings-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.single:
        return single(a)

    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    ours_f, theirs_f = str(out_dir / "bench_batch_claimaudit.parquet"), str(out_dir / "bench_batch_duckdb.parquet")
    first_ours = spawn("claimaudit", a.claims, a.rules, a.threads, ours_f)
    spawn("duckdb", a.claims, a.rules, a.threads, theirs_f)
    agreement = compare(ours_f, theirs_f)
    if not agreement["identical"]:
        print(json.dumps({"error": "findings differ", **agreement}))
        sys.exit(1)
    ours = median_runs("claimaudit", a.claims, a.rules, a.threads, a.repeat)
    theirs = median_runs("duckdb", a.claims, a.rules, a.threads, a.repeat)
    result = {
        "benchmark": "batch_audit", "date": dt.date.today().isoformat(), "python": platform.python_version(),
        "claims": a.claims, "rules": a.rules, "lines": first_ours["lines"], "threads": a.threads or "default",
        "findings": first_ours["hits"], "violations": first_ours["violations"], "agreement": agreement,
        "claimaudit": ours, "duckdb": theirs,
        "seconds": ours["median_s"], "lines_per_s": round(first_ours["lines"] / ours["median_s"]),
        "peer_seconds": theirs["median_s"], "ratio_duckdb_over_claimaudit": round(theirs["median_s"] / ours["median_s"], 2),
        "loadavg": os.getloadavg(),
    }
    if a.scale:
        result["scale"] = {}
        for rules in a.scale:
            r = median_runs("claimaudit", a.claims, rules, a.threads, a.repeat)
            result["scale"][Path(rules).name] = {"median_s": r["median_s"], "median_engine_s": r["median_engine_s"]}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
