#!/usr/bin/env python3
"""The DuckDB peer of the cross-line (history) batch benchmark: the four rules of gen_history.py written
by hand as SQL "the smart way" - one query per rule type, straight from Parquet; knowledge joined on the
code (prefix: equality on substr(code, 1, L) for each key length L of the column; exact: equality); hash
aggregates to find the few groups where a rule can fire at all; self-joins within (row, patient, day) for
the pairs; window functions with RANGE frames for the rolling count and the first-use span.

Semantics (engine/window.py, the reference engine's):
- total order within a patient: (fee_ocur_time, mdtrt_id, feedetl_sn);
- a line without fee_ocur_time (or psn_no) is insufficient data for every knowledge row it is a candidate
  of, and nobody's partner or window member; a line without feedetl_sn is quarantined (never audited);
- HIST_DDI, pair ... within day unordered: a line matching a row on one side is flagged when a line of the
  same patient and service date matching the row's other side comes strictly before it in the total order
  (the later line of the two is the violating one). Groups (row, patient, day) holding both sides are
  found first (GROUP BY ... HAVING bit_or(side) = 3, reading only codes, patients and times), then the
  lines of those groups are self-joined: EXISTS (same row, patient and day, other side, (t, mdtrt_id,
  feedetl_sn) smaller);
- HIST_ITEM_DUP, pair ... within day (ordered): a line matching the row's B side is flagged when any other
  line of the same patient and day matches its A side: lines are counted per (patient, day, A key) once,
  each B entry probes the count with its row's A key (less one when the line itself matches the A key);
- HIST_CYCLE, window same k within patient rolling 30 days, w.count > k.max_times: the row's lines of the
  patient with service date d, (this day - d) < 30 and order <= this line: ``count(*) OVER (PARTITION BY
  row, patient ORDER BY day RANGE BETWEEN 29 PRECEDING AND 1 PRECEDING)`` + ``count(*) OVER (PARTITION BY
  row, patient, day ORDER BY t, mdtrt_id, feedetl_sn)`` (default RANGE frame: peers included, as the
  reference counts every line whose order key is <= its own), over the (row, patient) partitions with more
  than max_times lines in all;
- HIST_COURSE, window same k within patient, w.span_days > k.max_days: span = this day - the row's first
  service date for the patient + 1; the first line in the order has the earliest date and is in every
  later line's window, so it is ``min(day) OVER (PARTITION BY row, patient)``, over the partitions whose
  first and last days are more than max_days apart.
Violation amounts are inscp_scp_amt rounded like engine.values.round_money.

Findings: (line = row number in the Parquet file, feedetl_sn, rule_code, knowledge_id, outcome, amount).

    python benches/duckdb_history.py --claims benches/out/hist_claims_10m.parquet \\
        --rules benches/out/ruleset_history --threads 1
    python benches/duckdb_history.py --claims benches/out/hist_claims_10m.parquet \\
        --rules benches/out/ruleset_history --verify --sample-lines 20000

--verify checks this SQL against the reference engine (the oracle): (1) on whole patients of the claims
file (a fixed pseudo-random order of patients, --sample-seed, until --sample-lines lines, written to
benches/out/), and (2) on a handmade set of edge cases (ties on time broken by mdtrt_id and feedetl_sn,
lines on both sides of a row, A = B rows, keys of several lengths, the 29th/30th day of the rolling
window, lines without a time or a patient) with its own knowledge tables; it compares the findings
(feedetl_sn, rule, knowledge row, outcome, amount) and exits with status 1 when they differ. The last line
on stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from duckdb_baseline import _lit, money_sql, text_sql  # noqa: E402
from gen_history import RULE_COURSE, RULE_CYCLE, RULE_DDI, RULE_ITEM_DUP, ROLLING_DAYS  # noqa: E402

# (table, key column, key match, partner column, partner match)
TABLES = {
    RULE_DDI: ("drug_interaction", "drug_a", "prefix", "drug_b", "prefix"),
    RULE_ITEM_DUP: ("item_dup_charge", "main_code", "exact", "sub_code", "exact"),
    RULE_CYCLE: ("cycle_limit", "code", "prefix", None, None),
    RULE_COURSE: ("course_limit", "code", "prefix", None, None),
}
PLANS = {RULE_DDI: "two_pass", RULE_ITEM_DUP: "entries", RULE_CYCLE: "entries", RULE_COURSE: "entries"}
KNOWLEDGE_COLUMNS = {  # typed like dsl.knowledge.convert_cell: text stripped, empty = NULL; numbers
    "drug_interaction": {"drug_a": "text", "drug_b": "text"},
    "item_dup_charge": {"main_code": "text", "sub_code": "text"},
    "cycle_limit": {"code": "text", "max_times": "number"},
    "course_limit": {"code": "text", "max_days": "number"},
}


class HistoryBaseline:
    def __init__(self, claims: str | Path, rules_dir: str | Path, threads: int | None = None,
                 con: duckdb.DuckDBPyConnection | None = None):
        self.claims = str(claims)
        self.kdir = Path(rules_dir) / "knowledge"
        self.con = con or duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]
        self.lengths: dict[tuple, list[int]] = {}
        self.plans = dict(PLANS)

    # knowledge ---------------------------------------------------------------------------------------
    def load_knowledge(self):
        for name, cols in KNOWLEDGE_COLUMNS.items():
            sel = [f"{text_sql('point_id')} AS point_id"]
            for c, kind in cols.items():
                sel.append(f"{text_sql(c)} AS {c}" if kind == "text" else f"TRY_CAST({text_sql(c)} AS DOUBLE) AS {c}")
            path = _lit(str(self.kdir / f"{name}.csv"))
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE k_{name} AS SELECT {', '.join(sel)} "
                             f"FROM read_csv({path}, header = true, all_varchar = true)")
        for table, key, kmatch, partner, pmatch in TABLES.values():
            for col, match in ((key, kmatch), (partner, pmatch)):
                if col and match == "prefix":
                    self.lengths[(f"k_{table}", col)] = [r[0] for r in self.con.execute(
                        f"SELECT DISTINCT length({col}) FROM k_{table} WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]

    # building blocks ---------------------------------------------------------------------------------
    def lines(self, lite: bool = False) -> str:
        """The claim lines the rules read (``lite``: only what finding the candidate groups needs). A line
        without feedetl_sn is quarantined by connectors.claims, never evaluated nor anyone's partner; a line
        without med_list_codg matches no knowledge row (the joins drop it)."""
        cols = ("file_row_number AS line, psn_no AS psn, fee_ocur_time AS t, CAST(fee_ocur_time AS DATE) AS d, "
                "med_list_codg AS code")
        if not lite:
            cols += ", coalesce(mdtrt_id, '') AS m, feedetl_sn AS sn, inscp_scp_amt AS amt"
        return (f"SELECT {cols} FROM read_parquet({_lit(self.claims)}, file_row_number = true) "
                f"WHERE feedetl_sn IS NOT NULL")

    def _join(self, src: str, table: str, col: str, match: str, cols: str) -> str:
        """Lines of ``src`` joined to the knowledge rows (``k``) whose ``col`` matches their code, one row per
        line and knowledge row: exact = equality; prefix = equality on substr(code, 1, L) for each key length
        L of the column."""
        if match == "exact":
            return f"SELECT l.*, {cols} FROM {src} l JOIN {table} k ON l.code = k.{col}"
        lengths = self.lengths[(table, col)]
        parts = []
        for n in lengths:  # one table per key length (no filter for the planner to copy)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_{col}_{n} AS "
                             f"SELECT * FROM {table} WHERE length({col}) = {n}")
            parts.append(f"SELECT l.*, {cols} FROM {src} l JOIN {table}_{col}_{n} k ON substr(l.code, 1, {n}) = k.{col}")
        return " UNION ALL ".join(parts) or f"SELECT l.*, {cols} FROM {src} l JOIN {table} k ON false"

    def _pair_sides(self, rule: str) -> str:
        """A pair table's rows once per side (s = 1: A, 2: B), so that one join finds the lines matching
        either side of a row: (point_id, s, pkey = the side's key, key_a = the row's A key)."""
        table, a, am, b, bm = TABLES[rule]
        if am != bm:
            raise NotImplementedError("pair sides matched differently")
        name = f"s_{table}"
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                         f"SELECT point_id, 1 AS s, {a} AS pkey, {a} AS key_a FROM k_{table} WHERE {a} IS NOT NULL "
                         f"UNION ALL SELECT point_id, 2 AS s, {b} AS pkey, {a} AS key_a FROM k_{table} WHERE {b} IS NOT NULL")
        if am == "prefix":
            self.lengths[(name, "pkey")] = sorted(set(self.lengths[(f"k_{table}", a)]) | set(self.lengths[(f"k_{table}", b)]))
        return name

    @staticmethod
    def _matches_sql(code: str, key: str, match: str) -> str:
        """The line's code matches a key: equal (exact) or starts with it (prefix)."""
        return f"{code} = {key}" if match == "exact" else f"starts_with({code}, {key})"

    @staticmethod
    def _money_or_null(rule: str, outcome: str) -> str:
        amount = money_sql("amt") if outcome == "violation" else "CAST(NULL AS DOUBLE)"
        return (f"line, sn AS feedetl_sn, '{rule}' AS rule_code, point_id AS knowledge_id, "
                f"'{outcome}' AS outcome, {amount} AS amount")

    @staticmethod
    def finish(rule: str, rows: str, cond: str) -> str:
        """Findings from ``rows``: no time or no patient -> insufficient data; else the condition (three-
        valued: NULL -> insufficient data)."""
        c = f"CASE WHEN l.t IS NULL OR l.psn IS NULL THEN NULL ELSE {cond} END"
        return f"""
            SELECT line, sn AS feedetl_sn, '{rule}' AS rule_code, point_id AS knowledge_id,
                   CASE WHEN c THEN 'violation' ELSE 'insufficient_data' END AS outcome,
                   CASE WHEN c THEN {money_sql('amt')} END AS amount
            FROM (SELECT l.*, {c} AS c FROM ({rows}) l) WHERE c IS NOT false"""

    def _candidates(self, rule: str, table: str, col: str, match: str, cols: str, keys: tuple, having: str) -> str:
        """The CTEs up to ``c``: the lines matching the rule's knowledge rows (entries), marked ``in_group``
        when their group (``keys``: row, patient [, day]) can fire (``having``, a hash aggregate over the
        entries with a time and a patient); only those and the lines without a time or a patient are kept.
        Two plans: "two_pass" finds the groups in a first pass over the claims reading only codes, patients
        and times, then joins the lines with all columns to them (best when most lines match); "entries"
        materialises the entries with all columns once and groups them (best when few lines match)."""
        on = " AND ".join(f"e.{k} = g.{k}" for k in keys)
        group = f"SELECT {', '.join(keys)} FROM {{}} WHERE t IS NOT NULL AND psn IS NOT NULL GROUP BY ALL HAVING {having}"
        keep = (f"SELECT e.*, g.point_id IS NOT NULL AS in_group FROM {{}} e LEFT JOIN g ON {on} "
                f"WHERE g.point_id IS NOT NULL OR e.t IS NULL OR e.psn IS NULL")
        if self.plans.get(rule, "entries") == "two_pass":
            # second pass: only the lines of the patients (and days) of those groups, and the lines without
            # a time or a patient, are joined to the knowledge again
            sub = [k for k in keys if k != "point_id"]
            on_l = " AND ".join(f"l.{k} = gk.{k}" for k in sub)
            return (f"WITH lite AS NOT MATERIALIZED ({self.lines(lite=True)}), l AS NOT MATERIALIZED ({self.lines()}), "
                    f"g AS ({group.format('(' + self._join('lite', table, col, match, cols) + ')')}), "
                    f"gk AS (SELECT DISTINCT {', '.join(sub)} FROM g), "
                    f"l2 AS (SELECT l.* FROM l LEFT JOIN gk ON {on_l} "
                    f"WHERE gk.psn IS NOT NULL OR l.t IS NULL OR l.psn IS NULL), "
                    f"c AS MATERIALIZED ({keep.format('(' + self._join('l2', table, col, match, cols) + ')')})")
        return (f"WITH l AS NOT MATERIALIZED ({self.lines()}), e AS MATERIALIZED ({self._join('l', table, col, match, cols)}), "
                f"g AS ({group.format('e')}), c AS MATERIALIZED ({keep.format('e')})")

    def _pair(self, rule: str, having: str, partner: str, candidate: str) -> str:
        """The (row, patient, day) groups where the rule can fire (``having``); their lines; the pairs within
        each group (a semi-join on (row, patient, day) with ``partner`` as the residual predicate); and the
        lines without a time or a patient (insufficient data for each row they are a ``candidate`` of)."""
        sides = self._pair_sides(rule)
        ctes = self._candidates(rule, sides, "pkey", TABLES[rule][2], "k.point_id, k.s, k.key_a",
                                ("point_id", "psn", "d"), having)
        hits = (f"SELECT * FROM c a WHERE a.in_group AND {candidate} AND EXISTS (SELECT 1 FROM c b WHERE b.in_group "
                f"AND b.point_id = a.point_id AND b.psn = a.psn AND b.d = a.d AND {partner})")
        # DISTINCT: a line matching both sides of a row has two entries, one finding
        return (f"{ctes} SELECT DISTINCT {self._money_or_null(rule, 'violation')} FROM ({hits}) UNION ALL "
                f"SELECT DISTINCT {self._money_or_null(rule, 'insufficient_data')} FROM c a "
                f"WHERE NOT a.in_group AND {candidate}")

    def _window(self, rule: str, extra: str, having: str, window: str, cond: str) -> str:
        """The (row, patient) partitions where the rule can fire (``having``); the ``window`` values over
        each of them and ``cond``; and the lines without a time or a patient (insufficient data)."""
        table, key, match, _, _ = TABLES[rule]
        ctes = self._candidates(rule, f"k_{table}", key, match, f"k.point_id, {extra}", ("point_id", "psn"), having)
        rows = f"SELECT c.*, {window} FROM c WHERE in_group UNION ALL SELECT c.*, NULL FROM c WHERE NOT in_group"
        return f"{ctes} {self.finish(rule, rows, cond)}"

    # one query per rule type ------------------------------------------------------------------------------
    def ddi(self) -> str:
        """pair ... within day unordered: a line is flagged for a row when a line of the same patient and day
        matching the row's other side comes before it in the total order. Groups: both sides present."""
        return self._pair(RULE_DDI, having="bit_or(s) = 3", candidate="true",
                          partner="b.s <> a.s AND (b.t, b.m, b.sn) < (a.t, a.m, a.sn)")

    def item_dup(self) -> str:
        """pair ... within day (ordered): a line matching a row's B side is flagged when another line of the
        same patient and day matches its A side. The A side needs no row id: the lines of each patient and
        day are counted per A key once (a hash aggregate over the lines matching any A key); each B entry
        (line, row) probes that count with (patient, day, the row's A key), less one when the line itself
        matches the A key. A line without a time or a patient: insufficient data (the LEFT JOIN keeps it)."""
        table, a, am, b, bm = TABLES[RULE_ITEM_DUP]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE a_{table} AS SELECT DISTINCT {a} AS key_a FROM k_{table} "
                         f"WHERE {a} IS NOT NULL")
        if am == "prefix":
            self.lengths[(f"a_{table}", "key_a")] = self.lengths[(f"k_{table}", a)]
        present = (f"SELECT psn, d, key_a, count(*) AS n FROM ({self._join('l', f'a_{table}', 'key_a', am, 'k.key_a')}) "
                   f"WHERE t IS NOT NULL AND psn IS NOT NULL GROUP BY ALL")
        entries = self._join("l", f"k_{table}", b, bm, f"k.point_id, k.{a} AS key_a")
        self_a = self._matches_sql("e.code", "e.key_a", am)
        c = (f"SELECT e.*, e.t IS NOT NULL AND e.psn IS NOT NULL AS c FROM ({entries}) e LEFT JOIN p "
             f"ON p.psn = e.psn AND p.d = e.d AND p.key_a = e.key_a "
             f"WHERE e.t IS NULL OR e.psn IS NULL OR p.n > CASE WHEN {self_a} THEN 1 ELSE 0 END")
        return (f"WITH l AS NOT MATERIALIZED ({self.lines()}), p AS ({present}) "
                f"SELECT line, sn AS feedetl_sn, '{RULE_ITEM_DUP}' AS rule_code, point_id AS knowledge_id, "
                f"CASE WHEN c THEN 'violation' ELSE 'insufficient_data' END AS outcome, "
                f"CASE WHEN c THEN {money_sql('amt')} END AS amount FROM ({c})")

    def cycle(self) -> str:
        """window same k within patient rolling 30 days; w.count > k.max_times. Partitions: more lines than
        max_times in all. The window of a line: the row's lines of the patient on the 29 days before (RANGE
        frame over the day number) plus those of the same day up to it in the total order (RANGE frame over
        (t, mdtrt_id, feedetl_sn): peers included, as the reference counts every line whose order key is <=
        its own)."""
        window = (f"count(*) OVER (PARTITION BY point_id, psn, d ORDER BY t, m, sn) "
                  f"+ count(*) OVER (PARTITION BY point_id, psn ORDER BY CAST(d - DATE '1970-01-01' AS INTEGER) "
                  f"RANGE BETWEEN {ROLLING_DAYS - 1} PRECEDING AND 1 PRECEDING) AS w_count")
        return self._window(RULE_CYCLE, "k.max_times", "count(*) > min(max_times) OR bool_or(max_times IS NULL)",
                            window, "l.w_count > l.max_times")

    def course(self) -> str:
        """window same k within patient; w.span_days > k.max_days: span from the row's first day for the
        patient (the first line in the order has the earliest day and is in every later line's window).
        Partitions: first to last day longer than max_days."""
        return self._window(RULE_COURSE, "k.max_days",
                            "max(d) - min(d) + 1 > min(max_days) OR bool_or(max_days IS NULL)",
                            "d - min(d) OVER (PARTITION BY point_id, psn) + 1 AS span_days",
                            "l.span_days > l.max_days")

    def queries(self) -> dict[str, str]:
        return {RULE_DDI: self.ddi(), RULE_ITEM_DUP: self.item_dup(), RULE_CYCLE: self.cycle(),
                RULE_COURSE: self.course()}

    def run(self) -> tuple[pa.Table, dict]:
        """All four rules, one query after another; the findings and wall seconds per step."""
        times, cpu = {}, {}
        t0, c0 = time.perf_counter(), time.process_time()
        self.load_knowledge()
        times["load_knowledge"], cpu["load_knowledge"] = time.perf_counter() - t0, time.process_time() - c0
        parts = []
        for name, sql in self.queries().items():
            t, c = time.perf_counter(), time.process_time()
            parts.append(self.con.sql(sql).to_arrow_table())
            times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        times["total"], cpu["total"] = time.perf_counter() - t0, time.process_time() - c0
        self.cpu = cpu
        schema = pa.schema([("line", pa.int64()), ("feedetl_sn", pa.string()), ("rule_code", pa.string()),
                            ("knowledge_id", pa.string()), ("outcome", pa.string()), ("amount", pa.float64())])
        return pa.concat_tables([p.cast(schema) for p in parts]), times


def summarize(findings: pa.Table) -> dict:
    out = Counter()
    for rule, outcome in zip(findings.column("rule_code").to_pylist(), findings.column("outcome").to_pylist()):
        out[f"{rule}:{outcome}"] += 1
    return dict(sorted(out.items()))


# ---- verification against the reference engine ----------------------------------------------------------


def sample_patients(claims: str, n_lines: int, out: Path, seed: int = 20261122) -> dict:
    """Whole patients of ``claims`` (pseudo-random order of patients, fixed by ``seed``) until n_lines
    lines, written to ``out`` in file order."""
    con = duckdb.connect()
    src = f"read_parquet({_lit(claims)}, file_row_number = true)"
    con.execute(f"""CREATE TEMP TABLE pick AS
        SELECT psn_no FROM (
            SELECT psn_no, n, sum(n) OVER (ORDER BY hash(psn_no, {int(seed)}), psn_no ROWS UNBOUNDED PRECEDING) AS upto
            FROM (SELECT psn_no, count(*) AS n FROM {src} GROUP BY psn_no))
        WHERE upto - n < {int(n_lines)}""")
    con.execute(f"COPY (SELECT * EXCLUDE (file_row_number) FROM {src} WHERE psn_no IN (SELECT psn_no FROM pick) "
                f"ORDER BY file_row_number) TO {_lit(str(out))} (FORMAT parquet)")
    lines, patients = con.execute(f"SELECT count(*), count(DISTINCT psn_no) FROM read_parquet({_lit(str(out))})").fetchone()
    return {"sample": str(out), "lines": lines, "patients": patients}


def reference_findings(claims: str, rules_dir: str) -> tuple[list, int, list]:
    from claimaudit.connectors.claims import load_lines
    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.reference import ReferenceEngine
    rs = load_ruleset(rules_dir)
    if not rs.ok:
        raise SystemExit(rs.render_diagnostics())
    engine = ReferenceEngine(rs)
    lines, quarantined = load_lines(claims, engine.rules)
    return list(engine.run(lines)), len(lines), quarantined


def compare(claims: str, rules_dir: str, threads: int | None = None) -> dict:
    """Reference engine vs this SQL on one claims file: (feedetl_sn, rule, knowledge id, outcome) sets and
    violation amounts rounded to 0.01."""
    t0 = time.perf_counter()
    ref, n_lines, quarantined = reference_findings(claims, rules_dir)
    ref_s = time.perf_counter() - t0

    def key(sn, rule, kid, outcome):
        return (str(sn), rule, kid, outcome)
    ref_k = {key(f.line_id, f.rule_code, f.knowledge.point_id if f.knowledge else None, f.outcome): f.amount for f in ref}
    t0 = time.perf_counter()
    table, _ = HistoryBaseline(claims, rules_dir, threads).run()
    sql_s = time.perf_counter() - t0
    sql_k = {}
    dup = 0
    for sn, rule, kid, outcome, amount in zip(*(table.column(c).to_pylist() for c in
                                                ("feedetl_sn", "rule_code", "knowledge_id", "outcome", "amount"))):
        k = key(sn, rule, kid, outcome)
        dup += k in sql_k
        sql_k[k] = amount

    def r2(x):
        return None if x is None else round(x, 2)
    amount_diff = sorted((k, ref_k[k], sql_k[k]) for k in ref_k.keys() & sql_k.keys() if r2(ref_k[k]) != r2(sql_k[k]))
    only_ref, only_sql = sorted(ref_k.keys() - sql_k.keys()), sorted(sql_k.keys() - ref_k.keys())
    per_rule_ref = Counter(f"{k[1]}:{k[3]}" for k in ref_k)
    return {
        "lines": n_lines, "quarantined": len(quarantined), "reference_s": round(ref_s, 2), "duckdb_s": round(sql_s, 2),
        "reference_findings": len(ref_k), "duckdb_findings": table.num_rows, "duckdb_duplicates": dup,
        "per_rule_reference": dict(sorted(per_rule_ref.items())), "per_rule_duckdb": summarize(table),
        "only_reference": only_ref[:20], "only_duckdb": only_sql[:20], "amount_differences": amount_diff[:20],
        "n_only_reference": len(only_ref), "n_only_duckdb": len(only_sql), "n_amount_differences": len(amount_diff),
        "identical": not only_ref and not only_sql and not amount_diff and not dup,
    }


EDGE_KNOWLEDGE = {
    "drug_interaction": ["point_id,drug_a,name_a,drug_b,name_b,severity,text,source",
                         "E-D1,XAAAAAAAA1,a,XBBBBBBBB1,b,中度,t,s",
                         "E-D2,XCCCCCCCC1,c,XCCCCCCCC1,c,中度,t,s",           # A = B
                         "E-D3,XDDDDDDDD1,d,XDDDDDDDD1EE,d2,中度,t,s",        # B's key starts with A's
                         "E-D4,XBBBBBBBB1,b,XAAAAAAAA1,a,中度,t,s"],          # the same pair reversed
    "item_dup_charge": ["point_id,main_code,main_name,sub_code,sub_name,text,source",
                        "E-P1,111111111111111,x,222222222222222,y,t,s",
                        "E-P2,333333333333333,z,333333333333333,z,t,s",      # A = B
                        "E-P3,222222222222222,y,111111111111111,x,t,s"],
    "cycle_limit": ["point_id,code,item_name,max_times,period_days,text,source",
                    "E-C1,444444444444444,c,1,30,t,s",
                    "E-C2,XAAAAAAAA1,a,2,30,t,s",
                    "E-C3,XAAAAAAAA,a9,3,30,t,s",                            # a shorter key of the same drug
                    "E-C4,555555555555555,e,,30,t,s"],                       # no limit: insufficient data
    "course_limit": ["point_id,code,item_name,max_days,text,source",
                     "E-K1,XBBBBBBBB1,b,3,t,s",
                     "E-K2,XBBBBBBBB,b9,1,t,s"],
}


def edge_cases(rules_dir: str, work: Path) -> Path:
    """Claims and a ruleset (the rule file of ``rules_dir`` with EDGE_KNOWLEDGE) for the edge cases."""
    import datetime as dt
    import shutil

    import pyarrow.parquet as pq
    work.mkdir(parents=True, exist_ok=True)
    (work / "knowledge").mkdir(exist_ok=True)
    for rules in Path(rules_dir).glob("*.rules"):
        shutil.copy(rules, work / rules.name)
    for name, rows in EDGE_KNOWLEDGE.items():
        (work / "knowledge" / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    def at(day, hh=9, mm=0):
        return dt.datetime(2025, 3, 1, hh, mm) + dt.timedelta(days=day)
    a, b, c = "XAAAAAAAA1" + "X" * 13, "XBBBBBBBB1" + "Y" * 13, "XCCCCCCCC1" + "Z" * 13
    d, d2 = "XDDDDDDDD1" + "Q" * 13, "XDDDDDDDD1EE" + "R" * 11
    rows = [  # (psn_no, mdtrt_id, feedetl_sn, med_list_codg, fee_ocur_time, inscp_scp_amt)
        ("P1", "M2", "S01", a, at(0), 10.0), ("P1", "M1", "S02", b, at(0), 11.0),   # same time: M1 < M2
        ("P1", "M1", "S03", c, at(0), 12.0), ("P1", "M1", "S04", c, at(0), 13.0),   # same time, same encounter
        ("P1", "M1", "S05", d2, at(0, 10), 14.0), ("P1", "M1", "S06", d, at(0, 11), 15.0),
        ("P1", "M3", "S07", a, None, 16.0), (None, "M9", "S08", b, at(0), 17.0),   # no time; no patient
        ("P1", "M4", "S09", b, at(1), 18.0), ("P1", "M5", "S10", a, at(1, 23, 59), 19.0),
        ("P2", "N1", "I01", "111111111111111", at(0), 20.0), ("P2", "N2", "I02", "222222222222222", at(0, 20), 21.0),
        ("P2", "N1", "I03", "333333333333333", at(0), 22.0), ("P2", "N1", "I04", "333333333333333", at(0), 23.0),
        ("P2", "N1", "I05", "333333333333333", at(1), 24.0), ("P2", "N1", "I06", "222222222222222", None, 25.0),
        ("P2", "N3", "I07", "222222222222222", at(2), None),                        # no amount
        ("P2", "N3", "I08", "111111111111111", at(2, 10), 29.0),
        ("P5", "N9", None, "222222222222222", at(0), 26.0),                          # no line id: quarantined
        ("P5", "N9", "I09", "111111111111111", at(0), 27.0),
        ("P3", "Q9", "C90", "555555555555555", at(3), 28.0),
    ]
    rows += [("P3", f"Q{i}", f"C{i:02d}", "444444444444444", at(day), 30.0) for i, day in enumerate([0, 29, 30, 59, 89, 89])]
    rows += [("P3", f"R{i}", f"A{i:02d}", a, at(day, 8), 31.0) for i, day in enumerate([0, 0, 0, 5, 40])]
    rows += [("P4", f"K{i}", f"K{i:02d}", b, at(day), 32.0) for i, day in enumerate([0, 1, 2, 3, 10])]
    rows += [("P4", "KX", "K99", b, None, 33.0)]
    names = ["psn_no", "mdtrt_id", "feedetl_sn", "med_list_codg", "fee_ocur_time", "inscp_scp_amt"]
    table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)},
                     schema=pa.schema([("psn_no", pa.string()), ("mdtrt_id", pa.string()), ("feedetl_sn", pa.string()),
                                       ("med_list_codg", pa.string()), ("fee_ocur_time", pa.timestamp("us")),
                                       ("inscp_scp_amt", pa.float64())]))
    table = table.append_column("hilist_name", pa.array(["n"] * len(rows)))
    pq.write_table(table, work / "claims.parquet")
    return work


# ---- CLI ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", required=True, help="claims Parquet (gen_claims.py --history)")
    ap.add_argument("--rules", required=True, help="ruleset directory from gen_history.py")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's default; the benchmark uses 1)")
    ap.add_argument("--out", help="write the findings to this Parquet file")
    ap.add_argument("--explain", action="store_true", help="print the SQL of each rule")
    ap.add_argument("--verify", action="store_true",
                    help="compare with the reference engine on whole patients of --claims (see --sample-lines)")
    ap.add_argument("--sample-lines", type=int, default=20000, help="--verify: lines in the sample (default 20,000)")
    ap.add_argument("--sample-seed", type=int, default=20261122, help="--verify: which patients (default 20261122)")
    a = ap.parse_args(argv)
    if a.verify:
        out_dir = HERE / "out"
        out_dir.mkdir(exist_ok=True)
        sample = sample_patients(a.claims, a.sample_lines,
                                 out_dir / f"history_sample_{a.sample_lines}_{a.sample_seed}.parquet", a.sample_seed)
        print(json.dumps(sample), file=sys.stderr)
        rep = compare(sample["sample"], a.rules, a.threads)
        print(json.dumps({"sample": rep}, ensure_ascii=False, default=str), file=sys.stderr)
        work = edge_cases(a.rules, out_dir / "history_edge_cases")
        edge = compare(str(work / "claims.parquet"), str(work), a.threads)
        print(json.dumps({"edge_cases": edge}, ensure_ascii=False, default=str), file=sys.stderr)
        ok = rep["identical"] and edge["identical"]
        keep = ("lines", "quarantined", "reference_s", "duckdb_s", "reference_findings", "duckdb_findings",
                "per_rule_reference", "n_only_reference", "n_only_duckdb", "n_amount_differences", "identical")
        print(json.dumps({"script": "duckdb_history", "command": "verify", "identical": ok, **sample,
                          "sample_check": {k: rep[k] for k in keep}, "edge_cases": {k: edge[k] for k in keep}},
                         ensure_ascii=False, default=str))
        sys.exit(0 if ok else 1)
    b = HistoryBaseline(a.claims, a.rules, a.threads)
    if a.explain:
        b.load_knowledge()
        for name, sql in b.queries().items():
            print(f"-- {name}\n{sql}\n")
    findings, times = b.run()
    if a.out:
        import pyarrow.parquet as pq
        pq.write_table(findings, a.out)
    rows = b.con.execute(f"SELECT count(*) FROM read_parquet({_lit(a.claims)})").fetchone()[0]
    print(json.dumps({"script": "duckdb_history", "threads": b.threads, "rows": rows, "findings": findings.num_rows,
                      "per_rule": summarize(findings), "seconds": round(times["total"], 3),
                      "lines_per_s": round(rows / times["total"]), "cpu_s": round(b.cpu["total"], 3),
                      "seconds_by_query": {k: round(v, 3) for k, v in times.items()},
                      "cpu_seconds_by_query": {k: round(v, 3) for k, v in b.cpu.items()},
                      "duckdb": duckdb.__version__, "loadavg": os.getloadavg()}, ensure_ascii=False))


if __name__ == "__main__":
    main()
