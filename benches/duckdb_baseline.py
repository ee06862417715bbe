#!/usr/bin/env python3
"""The DuckDB peer for the compiled-execution work: the benchmark ruleset (gen_knowledge.py) written
by hand as SQL "the smart way" - one query per rule type, the knowledge table joined on the code
prefix (substr(med_list_codg, 1, L) = code for every key length L in the table), derived values
(age, dose, frequency, units per day, diagnoses) computed in SQL, three-valued logic kept.

Each query returns (feedetl_sn, rule_code, knowledge_id, outcome, amount): outcome 'violation' or
'insufficient_data' exactly as the reference engine decides them, amount rounded half-up to the fen
like engine.values.round_money. Dose and frequency text are parsed once per distinct text (a
DISTINCT over the column, then a join) with CASE tables generated from claimaudit.dsl.units, so the
SQL and the engine share one definition of units and frequencies.

    run     run the queries once on a claims file, print counts and timing
    bench   median-of-N timing with threads=1 and with DuckDB's default threads
    check   generate a small claims file, run the reference engine and this SQL, compare

    python benches/duckdb_baseline.py check --lines 5000
    python benches/duckdb_baseline.py bench --claims benches/out/claims_10m.parquet \\
        --rules benches/out/ruleset_50000 --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import DEFAULT_SEED, RULE_AGE, RULE_CNT, RULE_DOSE, RULE_IND, RULE_SEX  # noqa: E402

try:
    from claimaudit.dsl.units import UNITS, _CN_DIGITS, _FREQ_CODES
except ImportError:  # pragma: no cover
    sys.exit("claimaudit is not importable: run with the project's venv (e.g. /tmp/venv1/bin/python)")

HERE = Path(__file__).resolve().parent
TABLES = {RULE_DOSE: "drug_max_dose", RULE_AGE: "drug_age_range", RULE_SEX: "drug_sex", RULE_CNT: "drug_max_cnt",
          RULE_IND: "drug_indication"}

CLAIM_COLUMNS = ("feedetl_sn", "med_list_codg", "inscp_scp_amt", "sin_dos_dscr", "used_frqu_dscr", "brdy",
                 "fee_ocur_time", "gend", "cnt", "prd_days", "dscg_maindiag_code", "diag_codes", "hosp_appr_flag")

# ---- SQL building blocks (kept in step with claimaudit.dsl.units / engine.values) ------------------

# Python's str.strip() and re's \s are Unicode-aware; RE2's \s is ASCII. This class is Python's
# whitespace (str.isspace): ASCII whitespace, \x1c-\x1f, \x85 and the Unicode separators.
WS = r"[\t\n\v\f\r\x{1c}-\x{1f}\x{85}\p{Z}]"
NOT_UNIT = r"[^\d\t\n\v\f\r\x{1c}-\x{1f}\x{85}\p{Z}/]"
# units._QUANTITY_RE with WS for \s
QTY_RE = rf"^{WS}*(?:每次|每日)?{WS}*(\d+(?:\.\d+)?){WS}*({NOT_UNIT}+?){WS}*(?:/次|每次)?{WS}*$"
CN = "".join(["0-9"] + [c for c in _CN_DIGITS])
PER_DAY_RE = rf"^(?:每日|每天|一日|1日|日){WS}*([{CN}]+){WS}*次$"
TIMES_RE = rf"^([{CN}]+){WS}*次{WS}*/{WS}*(?:日|天|d)$"


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _num(v: float) -> str:
    return f"CAST({float(v)!r} AS DOUBLE)"


def unit_sql(u: str, what: str) -> str:
    """units.unit_of(u): exact name first, then lower-case. what: 'factor' | 'dim'."""
    def case(expr):
        arms = " ".join(f"WHEN {_lit(name)} THEN {_num(f) if what == 'factor' else _lit(dim)}"
                        for name, (dim, f) in UNITS.items())
        return f"CASE {expr} {arms} END"
    return f"COALESCE({case(u)}, {case(f'lower({u})')})"


def strip_sql(x: str) -> str:
    return f"regexp_replace({x}, '^{WS}+|{WS}+$', '', 'g')"


def count_sql(tok: str) -> str:
    """units._count: ASCII digits -> the number, a single Chinese numeral -> its value."""
    arms = " ".join(f"WHEN {_lit(k)} THEN {_num(v)}" for k, v in _CN_DIGITS.items())
    return f"CASE WHEN regexp_full_match({tok}, '[0-9]+') THEN CAST({tok} AS DOUBLE) ELSE CASE {tok} {arms} END END"


def frequency_sql(txt: str) -> str:
    """units.parse_frequency(txt) -> administrations per day, NULL when not a regular frequency."""
    s = f"replace({strip_sql(txt)}, ' ', '')"
    low = f"rtrim(lower({s}), '.')"
    codes = " ".join(f"WHEN {_lit(k)} THEN {_num(v)}" for k, v in _FREQ_CODES.items())
    tok = (f"COALESCE(NULLIF(regexp_extract({s}, {_lit(PER_DAY_RE)}, 1), ''), "
           f"NULLIF(regexp_extract({s}, {_lit(TIMES_RE)}, 1), ''))")
    return f"COALESCE(CASE {low} {codes} END, {count_sql(tok)})"


def quantity_sql(txt: str, default_unit: str | None) -> tuple[str, str]:
    """units.parse_quantity(txt, default_unit) -> (value in the base unit, dimension) as SQL."""
    s = f"replace({txt}, '．', '.')"
    m = f"regexp_extract({s}, {_lit(QTY_RE)}, ['num', 'unit'])"
    num, unit = f"TRY_CAST(NULLIF({m}.num, '') AS DOUBLE)", f"NULLIF({m}.unit, '')"
    value, dim = f"{num} * {unit_sql(unit, 'factor')}", unit_sql(unit, "dim")
    if default_unit is not None:  # a bare number takes the default unit
        d_dim, d_f = UNITS[default_unit]
        bare = f"TRY_CAST({strip_sql(s)} AS DOUBLE)"
        value = f"CASE WHEN {bare} IS NOT NULL THEN {bare} * {_num(d_f)} ELSE {value} END"
        dim = f"CASE WHEN {bare} IS NOT NULL THEN {_lit(d_dim)} ELSE {dim} END"
    return quantize_sql(value), dim


def quantize_sql(x: str) -> str:
    """units.quantize: the same float operations."""
    return f"(floor(({x}) * 1e9 + 0.5) / 1e9)"


def money_sql(x: str) -> str:
    """engine.values.round_money, the same float operations: sign(v) * floor(|v| * 100 + 0.5 + 1e-6) / 100."""
    r = f"(floor(abs({x}) * {_num(100)} + {_num(0.5)} + {_num(1e-6)}) / {_num(100)})"
    return f"(CASE WHEN {x} < 0 THEN -{r} ELSE {r} END)"


def text_sql(x: str) -> str:
    """connectors.claims._text: stripped, empty -> NULL."""
    return f"NULLIF({strip_sql(x)}, '')"


def fast_text_sql(x: str, common: tuple) -> str:
    """text_sql with a fast path: the common clean values need no regular expression."""
    listed = ", ".join(_lit(c) for c in common)
    return f"CASE WHEN {x} IN ({listed}) THEN {x} ELSE {text_sql(x)} END"


def age_years_sql() -> str:
    """engine.values.derive('age_years'): full years on the date of service; NULL when brdy is after it."""
    d = "CAST(l.fee_ocur_time AS DATE)"
    return (f"CASE WHEN l.brdy > {d} THEN NULL ELSE year({d}) - year(l.brdy) - "
            f"CASE WHEN month({d}) * 100 + day({d}) < month(l.brdy) * 100 + day(l.brdy) THEN 1 ELSE 0 END END")


def finish_sql(rule: str, rows: str, cond: str, amount: str, scope: str | None = None) -> str:
    """The findings of one rule from ``rows`` (which carry feedetl_sn and point_id): the condition is
    computed once, SQL three-valued logic standing in for the engine's Kleene logic (NULL = unknown):
    scope unknown -> insufficient data, scope false -> nothing, condition true -> violation with the
    amount, unknown -> insufficient data."""
    c = f"CASE WHEN ({scope}) IS NULL THEN NULL WHEN {scope} THEN {cond} ELSE false END" if scope else cond
    return f"""
        SELECT feedetl_sn, '{rule}' AS rule_code, point_id AS knowledge_id,
               CASE WHEN c THEN 'violation' ELSE 'insufficient_data' END AS outcome,
               CASE WHEN c THEN {money_sql('a')} END AS amount
        FROM (SELECT feedetl_sn, point_id, c, CASE WHEN c THEN {amount} END AS a
              FROM (SELECT *, {c} AS c FROM ({rows}) j) j
              WHERE c IS NOT false)"""


# ---- the queries --------------------------------------------------------------------------------


class Baseline:
    def __init__(self, claims: str | Path, rules_dir: str | Path, threads: int | None = None,
                 con: duckdb.DuckDBPyConnection | None = None, materialize: bool = False):
        self.claims = str(claims)
        self.kdir = Path(rules_dir) / "knowledge"
        self.con = con or duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]
        self.materialize = materialize
        self.src = f"read_parquet({_lit(self.claims)})"
        self.key_lengths: dict[str, list[int]] = {}
        self.prefix_lengths: list[int] = []

    # knowledge ---------------------------------------------------------------------------------
    def _csv(self, table: str) -> str:
        return f"read_csv({_lit(str(self.kdir / (table + '.csv')))}, header = true, all_varchar = true)"

    def load_knowledge(self):
        """Knowledge tables typed like dsl.knowledge.convert_cell (text stripped, empty = NULL)."""
        t = text_sql
        dose_v, dose_d = quantity_sql("max_daily_dose", "mg")
        specs = {
            "drug_max_dose": f"{t('point_id')} AS point_id, {t('code')} AS code, {dose_v} AS kmax, {dose_d} AS kdim",
            "drug_age_range": f"{t('point_id')} AS point_id, {t('code')} AS code, "
                              f"TRY_CAST({t('min_age')} AS DOUBLE) AS min_age, TRY_CAST({t('max_age')} AS DOUBLE) AS max_age",
            "drug_sex": f"{t('point_id')} AS point_id, {t('code')} AS code, {t('gend')} AS kgend",
            "drug_max_cnt": f"{t('point_id')} AS point_id, {t('code')} AS code, "
                            f"TRY_CAST({t('max_daily_cnt')} AS DOUBLE) AS kmax",
            "drug_indication": f"{t('point_id')} AS point_id, {t('code')} AS code, "
                               f"list_transform(list_filter(string_split_regex(diag_prefixes, '[;；|,，、]'), "
                               f"lambda p: {t('p')} IS NOT NULL), lambda p: upper({strip_sql('p')})) AS pfx",
        }
        for name, cols in specs.items():
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE k_{name} AS SELECT {cols} FROM {self._csv(name)}")
            self.key_lengths[name] = [r[0] for r in self.con.execute(
                f"SELECT DISTINCT length(code) FROM k_{name} WHERE code IS NOT NULL ORDER BY 1").fetchall()]
        self.prefix_lengths = [r[0] for r in self.con.execute(
            "SELECT DISTINCT length(p) FROM (SELECT unnest(pfx) AS p FROM k_drug_indication) ORDER BY 1").fetchall()]
        if self.materialize:  # only the columns the rules read
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE claims AS SELECT {', '.join(CLAIM_COLUMNS)} FROM {self.src}")
            self.src = "claims"

    def _join(self, table: str, cols: str) -> str:
        """Lines joined to their knowledge rows: prefix match = equality on each key length."""
        # A line without feedetl_sn or med_list_codg is quarantined by connectors.claims, never evaluated:
        # the join drops a null code; the id is filtered.
        parts = [f"SELECT {cols} FROM {self.src} l JOIN k_{table} k ON substr(l.med_list_codg, 1, {n}) = k.code "
                 f"WHERE l.feedetl_sn IS NOT NULL"
                 for n in self.key_lengths[table]] or [f"SELECT {cols} FROM {self.src} l JOIN k_{table} k ON false"]
        return " UNION ALL ".join(parts)

    # one query per rule type ---------------------------------------------------------------------
    # Each rule is (preparation statements, the query). Text that must be parsed (dose, frequency,
    # diagnosis lists) has few distinct values: it is parsed once per distinct value read from the
    # claims file, then joined back, so the regular expressions run thousands of times, not millions.

    def dose(self) -> tuple[list[str], str]:
        v, dim = quantity_sql("t", None)
        prep = [f"CREATE OR REPLACE TEMP TABLE p_dose AS SELECT t, {v} AS v, {dim} AS dim "
                f"FROM (SELECT DISTINCT sin_dos_dscr AS t FROM {self.src}) WHERE t IS NOT NULL",
                f"CREATE OR REPLACE TEMP TABLE p_freq AS SELECT t, {frequency_sql('t')} AS freq "
                f"FROM (SELECT DISTINCT used_frqu_dscr AS t FROM {self.src}) WHERE t IS NOT NULL"]
        cols = "l.feedetl_sn, l.inscp_scp_amt, l.sin_dos_dscr, l.used_frqu_dscr, k.point_id, k.kmax, k.kdim"
        rows = (f"SELECT x.*, {quantize_sql('d.v * f.freq')} AS dd, d.dim FROM ({self._join('drug_max_dose', cols)}) x "
                f"LEFT JOIN p_dose d ON x.sin_dos_dscr = d.t LEFT JOIN p_freq f ON x.used_frqu_dscr = f.t")
        # daily_dose = single dose (base unit) x administrations per day; other dimensions are unknown
        return prep, finish_sql(RULE_DOSE, rows, "CASE WHEN j.dim = j.kdim THEN j.dd > j.kmax END",
                                "j.inscp_scp_amt * (j.dd - j.kmax) / j.dd")

    def age(self) -> tuple[list[str], str]:
        cols = f"l.feedetl_sn, l.inscp_scp_amt, {age_years_sql()} AS age, k.point_id, k.min_age, k.max_age"
        return [], finish_sql(RULE_AGE, self._join("drug_age_range", cols),
                              "(j.age < coalesce(j.min_age, 0) OR j.age > coalesce(j.max_age, 200))", "j.inscp_scp_amt")

    def sex(self) -> tuple[list[str], str]:
        cols = f"l.feedetl_sn, l.inscp_scp_amt, {fast_text_sql('l.gend', ('1', '2', '0', '9'))} AS gend, k.point_id, k.kgend"
        return [], finish_sql(RULE_SEX, self._join("drug_sex", cols), "j.gend <> j.kgend", "j.inscp_scp_amt",
                              scope="j.gend IN ('1', '2')")

    def cnt(self) -> tuple[list[str], str]:
        cols = "l.feedetl_sn, l.inscp_scp_amt, l.cnt, CAST(l.prd_days AS DOUBLE) AS prd_days, k.point_id, k.kmax"
        # daily_cnt = cnt / prd_days, unknown unless prd_days > 0; amount unknown when cnt = 0
        return [], finish_sql(RULE_CNT, self._join("drug_max_cnt", cols),
                              "(CASE WHEN j.prd_days > 0 THEN j.cnt / j.prd_days END) > j.kmax",
                              "CASE WHEN j.cnt <> 0 THEN j.inscp_scp_amt * (j.cnt - j.kmax * j.prd_days) / j.cnt END")

    def indication(self) -> tuple[list[str], str]:
        # reference.diagnoses(): main + diag_codes (split on ; | , ， ；), stripped, upper-cased, empty dropped.
        # Per distinct (main, list) pair: every prefix of every code at the prefix lengths the table uses,
        # so "a code starts with a prefix" becomes "a knowledge prefix is among the code prefixes".
        # has_diag is unknown (NULL) when the encounter has no diagnosis at all. A NULL and an empty
        # main code or list mean the same (no diagnosis), so the pair is keyed with coalesce(x, '').
        dx = (f"list_filter(list_transform(list_prepend({text_sql('m')}, string_split_regex(dl, '[;|,，；]')), "
              f"lambda x: upper({strip_sql('x')})), lambda x: x IS NOT NULL AND x <> '')")
        lengths = self.prefix_lengths or [1]
        pre = " || ".join(f"list_transform(dx, lambda d: substr(d, 1, {n}))" for n in lengths)
        prep = [f"CREATE OR REPLACE TEMP TABLE p_diag AS SELECT m, dl, CASE WHEN len(dx) > 0 THEN {pre} END AS dxp "
                f"FROM (SELECT m, dl, {dx} AS dx FROM (SELECT DISTINCT coalesce(dscg_maindiag_code, '') AS m, "
                f"coalesce(diag_codes, '') AS dl FROM {self.src}))"]
        cols = (f"l.feedetl_sn, l.inscp_scp_amt, coalesce(l.dscg_maindiag_code, '') AS m, coalesce(l.diag_codes, '') AS dl, "
                f"{fast_text_sql('l.hosp_appr_flag', ('0', '1'))} AS appr, k.point_id, k.pfx")
        rows = f"SELECT x.*, p.dxp FROM ({self._join('drug_indication', cols)}) x JOIN p_diag p ON x.m = p.m AND x.dl = p.dl"
        has = ("CASE WHEN j.pfx IS NULL OR j.dxp IS NULL THEN NULL ELSE "
               "coalesce(list_bool_or(list_transform(j.pfx, lambda p: list_contains(j.dxp, p))), false) END")
        return prep, finish_sql(RULE_IND, rows, f"(NOT ({has}) AND coalesce(j.appr, '0') <> '1')", "j.inscp_scp_amt")

    def rules(self) -> dict:
        return {RULE_DOSE: self.dose(), RULE_AGE: self.age(), RULE_SEX: self.sex(), RULE_CNT: self.cnt(),
                RULE_IND: self.indication()}

    def queries(self) -> dict[str, str]:
        return {name: ";\n".join(prep + [q]) for name, (prep, q) in self.rules().items()}

    def run(self) -> tuple[pa.Table, dict]:
        """All rules, one after another; returns the findings and seconds per rule (and in total)."""
        times, cpu = {}, {}
        t0, c0 = time.perf_counter(), time.process_time()
        self.load_knowledge()
        times["load_knowledge"], cpu["load_knowledge"] = time.perf_counter() - t0, time.process_time() - c0
        parts = []
        for name, (prep, sql) in self.rules().items():
            t, c = time.perf_counter(), time.process_time()
            for stmt in prep:
                self.con.execute(stmt)
            parts.append(self.con.sql(sql).to_arrow_table())
            times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        times["total"], cpu["total"] = time.perf_counter() - t0, time.process_time() - c0
        self.cpu = cpu  # CPU seconds of all threads: steadier than wall time on a shared machine
        return pa.concat_tables(parts), times


def claim_rows(path: str) -> int:
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


def summarize(findings: pa.Table) -> dict:
    out = Counter()
    for rule, outcome in zip(findings.column("rule_code").to_pylist(), findings.column("outcome").to_pylist()):
        out[f"{rule}:{outcome}"] += 1
    return dict(sorted(out.items()))


# ---- correctness check against the reference engine ------------------------------------------------


def reference_findings(claims: str, rules_dir: str):
    from claimaudit.connectors.claims import load_lines
    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.reference import ReferenceEngine
    rs = load_ruleset(rules_dir)
    if not rs.ok:
        raise SystemExit(rs.render_diagnostics())
    engine = ReferenceEngine(rs)
    lines, quarantined = load_lines(claims, engine.rules)
    return list(engine.run(lines)), len(lines), quarantined


def _key(sn, rule, kid):
    return (str(sn), rule, kid)


def compare(claims: str, rules_dir: str, threads: int | None = None) -> dict:
    """Run both, compare violation and insufficient-data sets (feedetl_sn, rule_code, knowledge id)
    and violation amounts rounded to 0.01. Returns a report; report['identical'] says it all."""
    ref, n_lines, quarantined = reference_findings(claims, rules_dir)
    ref_v = {_key(f.line_id, f.rule_code, f.knowledge.point_id if f.knowledge else None): f.amount
             for f in ref if f.outcome == "violation"}
    ref_i = {_key(f.line_id, f.rule_code, f.knowledge.point_id if f.knowledge else None)
             for f in ref if f.outcome == "insufficient_data"}
    table, _ = Baseline(claims, rules_dir, threads).run()
    sql_v, sql_i = {}, set()
    for sn, rule, kid, outcome, amount in zip(*(table.column(c).to_pylist() for c in
                                                ("feedetl_sn", "rule_code", "knowledge_id", "outcome", "amount"))):
        if outcome == "violation":
            sql_v[_key(sn, rule, kid)] = amount
        else:
            sql_i.add(_key(sn, rule, kid))

    def r2(x):
        return None if x is None else round(x, 2)
    amount_diff = sorted((k, ref_v[k], sql_v[k]) for k in ref_v.keys() & sql_v.keys() if r2(ref_v[k]) != r2(sql_v[k]))
    report = {
        "lines": n_lines, "quarantined": len(quarantined),
        "reference": {"violations": len(ref_v), "insufficient": len(ref_i)},
        "duckdb": {"violations": len(sql_v), "insufficient": len(sql_i), "rows": table.num_rows},
        "violations_only_reference": sorted(ref_v.keys() - sql_v.keys())[:20],
        "violations_only_duckdb": sorted(sql_v.keys() - ref_v.keys())[:20],
        "insufficient_only_reference": sorted(ref_i - sql_i)[:20],
        "insufficient_only_duckdb": sorted(sql_i - ref_i)[:20],
        "amount_differences": amount_diff[:20],
        "per_rule": summarize(table),
    }
    report["identical"] = (ref_v.keys() == sql_v.keys() and ref_i == sql_i and not amount_diff
                           and table.num_rows == len(sql_v) + len(sql_i))
    return report


# ---- CLI ------------------------------------------------------------------------------------------


def cmd_run(a):
    b = Baseline(a.claims, a.rules, a.threads, materialize=a.materialize)
    findings, times = b.run()
    if a.out:
        import pyarrow.parquet as pq
        pq.write_table(findings, a.out)
    rows = claim_rows(a.claims)
    if a.explain:
        for name, sql in b.queries().items():
            print(f"-- {name}\n{sql}\n")
    print(json.dumps({"script": "duckdb_baseline", "command": "run", "threads": b.threads, "rows": rows,
                      "findings": findings.num_rows, "per_rule": summarize(findings),
                      "seconds": round(times["total"], 3), "lines_per_s": round(rows / times["total"]),
                      "seconds_by_query": {k: round(v, 3) for k, v in times.items()},
                      "cpu_seconds_by_query": {k: round(v, 3) for k, v in b.cpu.items()},
                      "loadavg": os.getloadavg()}, ensure_ascii=False))


def cmd_bench(a):
    rows = claim_rows(a.claims)
    results = {}
    load_before = os.getloadavg()
    for threads in (1, 0):  # 0 = DuckDB's default (all cores)
        runs, cpus, by_query, n = [], [], [], None
        for i in range(a.repeat):
            b = Baseline(a.claims, a.rules, threads or None, materialize=a.materialize)
            findings, times = b.run()
            runs.append(times["total"])
            cpus.append(b.cpu["total"])
            by_query.append(times)
            n = findings.num_rows
            print(f"# threads={b.threads} run {i + 1}/{a.repeat}: {times['total']:.2f}s (cpu {b.cpu['total']:.2f}s) "
                  + " ".join(f"{k}={v:.2f}" for k, v in times.items() if k != "total")
                  + f" loadavg={os.getloadavg()[0]:.2f}", file=sys.stderr)
            b.con.close()
        med = statistics.median(runs)
        results["threads=1" if threads else "threads=default"] = {
            "threads": b.threads, "runs_s": [round(x, 3) for x in runs], "median_s": round(med, 3),
            "lines_per_s": round(rows / med), "cpu_s": [round(x, 3) for x in cpus],
            "median_cpu_s": round(statistics.median(cpus), 3), "findings": n,
            "median_by_query_s": {k: round(statistics.median(t[k] for t in by_query), 3) for k in by_query[0]},
        }
    out = {"script": "duckdb_baseline", "command": "bench", "rows": rows, "claims": a.claims, "rules": a.rules,
           "duckdb": duckdb.__version__, "repeat": a.repeat, "materialize": a.materialize, "results": results,
           "per_rule": summarize(findings), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "seconds": results["threads=1"]["median_s"], "lines_per_s": results["threads=1"]["lines_per_s"]}
    if a.append_results:
        append_results(Path(a.append_results), out)
    print(json.dumps(out, ensure_ascii=False))


def append_results(path: Path, out: dict):
    lines = ["", "## DuckDB baseline (issue 3), 2026-11-22", "",
             "Machine: 2 cores, 24 GB RAM, shared and noisy: other sessions ran tests and benchmarks at the same "
             f"time (1-minute load average {out['loadavg_before'][0]:.1f} before, {out['loadavg_after'][0]:.1f} after), "
             "so wall times carry contention; CPU seconds (all DuckDB threads) are the steadier figure. "
             f"DuckDB {out['duckdb']}, Python {sys.version.split()[0]}.", "",
             f"Claims: `{out['claims']}` ({out['rows']:,} lines; gen_claims.py, 20,000 drugs, seed {DEFAULT_SEED}). "
             f"Rules: `{out['rules']}` (gen_knowledge.py --instances 50000: 5 table-driven rules, 50,000 knowledge "
             "rows). benches/duckdb_baseline.py: one SQL query per rule type straight from Parquet, knowledge joined "
             "on the 10-character code prefix, derived values in SQL, three-valued logic, findings fetched as Arrow "
             "(feedetl_sn, rule_code, knowledge_id, outcome, amount); times include loading the knowledge CSVs. "
             f"Median of {out['repeat']} runs. Same findings as the reference engine (`duckdb_baseline.py check`).", "",
             "| threads | median wall s | lines/s (wall) | runs (s) | median CPU s | findings |",
             "|---|---|---|---|---|---|"]
    for r in out["results"].values():
        lines.append(f"| {r['threads']} | {r['median_s']:.2f} | {r['lines_per_s']:,} | "
                     f"{', '.join(f'{x:.2f}' for x in r['runs_s'])} | {r['median_cpu_s']:.2f} | {r['findings']:,} |")
    lines += ["", "Median wall seconds per rule (each includes its own Parquet scan and, for dose and indication, "
              "parsing the distinct texts):", "", "| step | " + " | ".join(out["results"]) + " |",
              "|---|" + "---|" * len(out["results"])]
    first = next(iter(out["results"].values()))
    for q in first["median_by_query_s"]:
        if q == "total":
            continue
        lines.append(f"| {q} | " + " | ".join(f"{r['median_by_query_s'][q]:.2f}" for r in out["results"].values()) + " |")
    lines += ["", "Findings by rule and outcome: " + ", ".join(f"{k} {v:,}" for k, v in out["per_rule"].items()) + ".", "", ""]
    new = not path.exists()
    with path.open("a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n")
        fh.write("\n".join(lines))


def cmd_check(a):
    import gen_claims
    import gen_knowledge
    out_dir = Path(a.workdir)
    reports, ok = [], True
    for seed in a.seeds:
        claims = out_dir / f"check_{a.lines}_{seed}.parquet"
        gen_claims.generate(a.lines, a.drugs, seed, claims)
        for inst in a.instances:
            rules = out_dir / f"check_ruleset_{inst}_{seed}"
            gen_knowledge.generate(inst, a.drugs, seed, rules)
            rep = compare(str(claims), str(rules), a.threads)
            rep.update({"seed": seed, "instances": inst})
            ok &= rep["identical"]
            reports.append(rep)
            print(json.dumps(rep, ensure_ascii=False, default=str), file=sys.stderr)
    print(json.dumps({"script": "duckdb_baseline", "command": "check", "identical": ok, "rows": a.lines,
                      "checks": [{k: r[k] for k in ("seed", "instances", "lines", "reference", "duckdb", "identical")}
                                 for r in reports]}, ensure_ascii=False))
    sys.exit(0 if ok else 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the SQL once")
    p.add_argument("--claims", required=True)
    p.add_argument("--rules", required=True, help="ruleset directory from gen_knowledge.py")
    p.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's default)")
    p.add_argument("--materialize", action="store_true", help="load the claims into a DuckDB table first")
    p.add_argument("--out", help="write the findings (feedetl_sn, rule_code, knowledge_id, outcome, amount) to Parquet")
    p.add_argument("--explain", action="store_true", help="print the SQL")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("bench", help="median timing, threads=1 and default threads")
    p.add_argument("--claims", required=True)
    p.add_argument("--rules", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--materialize", action="store_true", help="load the claims into a DuckDB table first (timed)")
    p.add_argument("--append-results", metavar="MD", help="append a section to this markdown file (never rewrites it)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("check", help="compare with the reference engine on small generated data")
    p.add_argument("--lines", type=int, default=5000)
    p.add_argument("--drugs", type=int, default=20000)
    p.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED])
    p.add_argument("--instances", type=int, nargs="+", default=[50000])
    p.add_argument("--threads", type=int)
    p.add_argument("--workdir", default=str(HERE / "out" / "check"))
    p.set_defaults(func=cmd_check)
    a = ap.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
