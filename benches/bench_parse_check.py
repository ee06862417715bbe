"""Benchmark: parse + check of a large, individually written rule file.

Generates (benches/rules_corpus.py, fixed seed) one rule file with one rule per drug — 20,000 by
default, about 10 MB — then, R times:

  parse_s        claimaudit.dsl.parse.parse_text on the file's text (Lark LALR parse + AST build)
  check_only_s   claimaudit.dsl.check.check_rule over the parsed rules (what load_ruleset adds)
  check_total_s  claimaudit.dsl.ruleset.load_ruleset on the directory (read + parse + tables + check)

and, once after the repeats, splits one parse into the Lark parse-tree stage and the AST-build stage
(private helpers; skipped with --no-split) and times loading the same knowledge written as tables.

Progress goes to stderr; the last line on stdout is one JSON object with the figures (medians over
the repeats): rules, file_mb, parse_s, check_only_s, check_total_s, rules_per_s (rules /
check_total_s), the same medians in CPU seconds of the process (*_cpu_s; steadier than wall
time on a shared box), peak_rss_mb (getrusage ru_maxrss), date, python, ...

Examples:
  python benches/bench_parse_check.py                      # 20,000 rules, 3 repeats, temp dir
  python benches/bench_parse_check.py --drugs 2000 --repeats 1 --out benches/out/bench
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules_corpus  # noqa: E402  (benches/ is not an installed package)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


CPU: dict[str, list[float]] = {}  # CPU seconds of this process per measurement name


def _timed(fn, gc_off: bool, name: str | None = None):
    """(result, wall seconds); CPU seconds go to CPU[name] (steadier than wall time on a busy box)."""
    if gc_off:
        gc.disable()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if name:
            CPU.setdefault(name, []).append(cpu)
        return result, wall
    finally:
        if gc_off:
            gc.enable()


def run(args) -> dict:
    from claimaudit.dsl.check import check_rule
    from claimaudit.dsl.parse import parse_text
    from claimaudit.dsl.ruleset import load_ruleset

    with tempfile.TemporaryDirectory(prefix="claimaudit-bench-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        t0 = time.perf_counter()
        forms = ("individual", "table") if args.table else ("individual",)
        drugs, written = rules_corpus.write_corpus(out, args.drugs, args.seed, forms)
        gen_s = time.perf_counter() - t0
        rule_file = written["individual"]
        size_mb = rule_file.stat().st_size / 1e6
        _log(f"generated {len(drugs)} rules into {rule_file} ({size_mb:.2f} MB) in {gen_s:.1f} s")

        try:  # building the LALR tables is a one-off cost per process; keep it out of the parse figure
            from claimaudit.dsl.parse import _parser
            _, grammar_s = _timed(_parser, False)
        except ImportError:
            grammar_s = None

        text = rule_file.read_text(encoding="utf-8")
        parse_times, check_times, load_times = [], [], []
        n_rules = n_errors = None
        for i in range(args.repeats):
            parsed, t = _timed(lambda: parse_text(text, str(rule_file)), args.gc_off, "parse")
            parse_times.append(t)
            n_parsed = len(parsed.rules)
            # check alone: what load_ruleset does after parsing (this file declares no tables)
            checked, t = _timed(lambda: [check_rule(d, {}, "2026.11") for d in parsed.rules], args.gc_off, "check_only")
            check_times.append(t)
            n_checked = sum(r is not None for r, _ in checked)
            del parsed, checked
            gc.collect()
            ruleset, t = _timed(lambda: load_ruleset(rule_file.parent), args.gc_off, "check_total")
            load_times.append(t)
            n_rules, n_errors = len(ruleset.rules), len(ruleset.errors)
            if n_errors:
                _log(ruleset.render_diagnostics()[:2000])
            del ruleset
            gc.collect()
            _log(f"repeat {i + 1}/{args.repeats}: parse {parse_times[-1]:.2f} s ({n_parsed} rules), "
                 f"check {check_times[-1]:.2f} s ({n_checked} rules), load_ruleset {load_times[-1]:.2f} s "
                 f"({n_rules} rules, {n_errors} errors); CPU s: parse {CPU['parse'][-1]:.2f}, "
                 f"check {CPU['check_only'][-1]:.2f}, load_ruleset {CPU['check_total'][-1]:.2f}")

        split = {}
        if not args.no_split:
            try:
                from claimaudit.dsl.parse import _Builder, _parser
                tree, t_tree = _timed(lambda: _parser().parse(text), args.gc_off)
                _, t_ast = _timed(lambda: _Builder(str(rule_file)).transform(tree), args.gc_off)
                del tree
                gc.collect()
                split = {"lark_tree_s": round(t_tree, 3), "ast_build_s": round(t_ast, 3)}
                _log(f"split (once): lark parse tree {t_tree:.2f} s, AST build {t_ast:.2f} s")
            except ImportError as e:
                _log(f"parse split skipped: {e}")

        table = {}
        if args.table:
            times = []
            for _ in range(args.repeats):
                rs, t = _timed(lambda: load_ruleset(written["table"].parent), args.gc_off)
                times.append(t)
                table = {"table_form_rules": len(rs.rules), "table_form_rows": sum(len(x) for x in rs.tables.values()),
                         "table_form_errors": len(rs.errors)}
            table["table_form_load_s"] = round(statistics.median(times), 3)
            _log(f"table form: {table['table_form_rules']} rules over {table['table_form_rows']} rows, "
                 f"load_ruleset {table['table_form_load_s']:.2f} s (median)")

    parse_s, load_s = statistics.median(parse_times), statistics.median(load_times)
    return {
        "benchmark": "parse_check",
        "rules": n_rules,
        "errors": n_errors,
        "file_mb": round(size_mb, 2),
        "repeats": args.repeats,
        "parse_s": round(parse_s, 3),
        "check_total_s": round(load_s, 3),
        "check_only_s": round(statistics.median(check_times), 3),
        "rules_per_s": round(n_rules / load_s, 1) if load_s else None,
        "parse_rules_per_s": round(n_rules / parse_s, 1) if parse_s else None,
        "parse_s_all": [round(t, 3) for t in parse_times],
        "check_only_s_all": [round(t, 3) for t in check_times],
        "check_total_s_all": [round(t, 3) for t in load_times],
        **{f"{k}_cpu_s": round(statistics.median(v), 3) for k, v in CPU.items()},
        "grammar_build_s": round(grammar_s, 3) if grammar_s is not None else None,
        **split,
        **table,
        "gc_off": args.gc_off,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "lark": _version("lark"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
    }


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--drugs", "-n", type=int, default=rules_corpus.DEFAULT_DRUGS,
                   help=f"rules to generate, one per drug (default {rules_corpus.DEFAULT_DRUGS})")
    p.add_argument("--repeats", "-r", type=int, default=3, help="timed repeats; medians are reported (default 3)")
    p.add_argument("--seed", type=int, default=rules_corpus.DEFAULT_SEED,
                   help=f"corpus seed (default {rules_corpus.DEFAULT_SEED})")
    p.add_argument("--out", type=Path, default=None,
                   help="write the corpus here and keep it (e.g. benches/out/bench, git-ignored); default: a temp dir")
    p.add_argument("--no-split", action="store_true", help="skip the one-off Lark-tree / AST-build split")
    p.add_argument("--no-table", dest="table", action="store_false",
                   help="skip timing the same knowledge written as tables")
    p.add_argument("--gc-off", action="store_true", help="disable the cyclic garbage collector while timing")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.drugs < 1:
        p.error("--drugs and --repeats must be positive")
    figures = run(args)
    print(json.dumps(figures, ensure_ascii=False))
    return 0 if not figures["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
