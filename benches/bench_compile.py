"""Benchmark: compile a full-size knowledge base to a bundle, and load the bundle.

Generates (gen_knowledge.py, fixed seed) a ruleset of N knowledge rows (default 250,000, the size
of the national 2025 edition) unless --rules names an existing one, then R times:

  compile_s        load_ruleset (parse + tables + check) + build_plan + write_bundle
  load_s           load_bundle (manifest + hash check of every file + Arrow IPC + plan)
  screener_load_s  Screener.from_path(bundle): load_bundle + the inline index and compiled closures

The last line on stdout is one JSON object with the medians.

Example:
  python benches/bench_compile.py                       # 250,000 rows over 100,000 drugs
  python benches/bench_compile.py --instances 50000 --drugs 20000 --repeats 1
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.bundle import load_bundle, write_bundle
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan

HERE = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", help="an existing ruleset directory (default: generate one)")
    ap.add_argument("--instances", type=int, default=250_000, help="knowledge rows to generate (default 250,000)")
    ap.add_argument("--drugs", type=int, default=100_000, help="drugs in the generated catalogue (default 100,000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "out"), help="where generated rulesets and bundles go")
    a = ap.parse_args(argv)

    out = Path(a.out)
    rules = Path(a.rules) if a.rules else out / f"ruleset_{a.instances}_{a.drugs}"
    if not a.rules and not (rules / "bench.rules").exists():
        subprocess.run([sys.executable, str(HERE / "gen_knowledge.py"), "--instances", str(a.instances),
                        "--drugs", str(a.drugs), "-o", str(rules)], check=True, stdout=subprocess.DEVNULL)
    bundle = out / f"bundle_{rules.name}"
    compile_s, load_s, screener_s = [], [], []
    manifest = None
    for _ in range(a.repeats):
        if bundle.exists():
            shutil.rmtree(bundle)
        t = time.perf_counter()
        rs = load_ruleset(rules)
        if not rs.ok:
            sys.exit(rs.render_diagnostics())
        manifest = write_bundle(build_plan(rs), bundle)
        compile_s.append(time.perf_counter() - t)
        del rs
        t = time.perf_counter()
        plan = load_bundle(bundle)
        load_s.append(time.perf_counter() - t)
        del plan
        t = time.perf_counter()
        Screener.from_path(bundle, stages=None)
        screener_s.append(time.perf_counter() - t)
    size_mb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 1e6
    print(json.dumps({
        "benchmark": "compile_load", "date": dt.date.today().isoformat(), "python": platform.python_version(),
        "knowledge_rows": sum(t["rows"] for t in manifest["knowledge"]), "rules": manifest["rules"],
        "families": manifest["families"], "parameter_rows": manifest["parameter_rows"],
        "bundle_mb": round(size_mb, 1), "repeats": a.repeats,
        "compile_s": round(statistics.median(compile_s), 2), "load_s": round(statistics.median(load_s), 3),
        "screener_load_s": round(statistics.median(screener_s), 3),
        "compile_s_all": [round(x, 2) for x in compile_s], "load_s_all": [round(x, 3) for x in load_s],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
