"""A batch audit run partition by partition (lines split by patient, connectors/partition.py), with the
findings and quarantine an in-memory run of the whole file gives: the same rows, in the same order, with
row numbers into the input file.

Why it is the same: every rule's window groups lines of one patient (day … year, patient, institution,
``rolling``) or of one encounter (encounter, prescription: ``mdtrt_id``), and a partition holds all lines of
its patients, the lines without a patient of their encounters, and the refunds of its lines. An encounter
id found under patients of two partitions (bad data) makes those partitions one group, audited together.
A scope not known here to stay within a patient or an encounter refuses partitioning (``scope_problem``).

Order: an in-memory run writes findings in (line, rule, knowledge row) order, lines in input order; each
partition's findings come in that order too, and the merge sorts them by (input row, rule, knowledge row).
The quarantine is sorted by input row, as the in-memory run sorts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from claimaudit.connectors.netting import net_table
from claimaudit.connectors.partition import ClaimsSource, split_claims

from .findings import FINDING_SCHEMA, findings_table

PATIENT_SCOPES = frozenset(("day", "month", "quarter", "year", "insurance_year", "patient", "institution"))
ENCOUNTER_SCOPES = frozenset(("encounter", "prescription"))  # grouped by mdtrt_id alone
# Lines per partition when --partitions is not given. A 10M-line cross-line audit held in memory peaks at
# about 5 GB (benches/RESULTS.md, session 4): partitions of that size fit a bureau's 16–32 GB server with
# room for the findings, and are large enough that the per-partition costs (reading back, compiling
# renderers, knowledge indexes) stay small against the work.
DEFAULT_PARTITION_LINES = 10_000_000


def scope_problem(engine) -> str | None:
    """Why the rules cannot be audited by patient partitions, or None."""
    for rule in engine.cross_rules:
        scope = rule.window.scope
        if scope not in PATIENT_SCOPES and scope not in ENCOUNTER_SCOPES:
            return (f"rule {rule.rule.code} groups lines 'within {scope}', which may reach across patients: "
                    "it cannot be audited by patient partitions")
    return None


def whole_encounters(engine) -> bool:
    """Whether some rule groups lines by encounter id (then no encounter may be split between partitions)."""
    return any(rule.window.scope in ENCOUNTER_SCOPES for rule in engine.cross_rules)


def partitions_for(rows: int | None, lines_per_partition: int) -> int:
    """How many partitions an input of ``rows`` lines takes: 1 (in memory) up to the budget."""
    if not rows or rows <= lines_per_partition:
        return 1
    return math.ceil(rows / lines_per_partition)


@dataclass
class AuditOutcome:
    """What an audit wrote and counted: findings (FINDING_SCHEMA), quarantined rows (row order), lines audited."""

    findings: pa.Table
    quarantined: list
    n_lines: int
    groups: list = field(default_factory=list)  # the partitions audited together


def audit_partitioned(engine, source: ClaimsSource, k: int, temp_dir: str | None = None) -> AuditOutcome:
    """Audit ``source`` in ``k`` partitions by patient with the batch ``engine`` (see the module docstring)."""
    with split_claims(source, k, temp_dir, whole_encounters(engine)) as parts:
        groups = _groups(k, parts.shared_encounters)
        tables, keys, quarantined, n_lines = [], [], [], 0
        for group in groups:
            table, rows = parts.read(group)
            if table is None:
                continue
            got = _audit_part(engine, table, rows)
            tables.append(got[0])
            keys.append(got[1])
            quarantined += got[2]
            n_lines += got[3]
            del table, got
    return AuditOutcome(_merge(tables, keys), sorted(quarantined, key=lambda q: q.row), n_lines, groups)


def _audit_part(engine, table: pa.Table, rows: np.ndarray):
    """One partition's findings (as a table), their order keys, its quarantined rows (input rows) and the
    number of lines audited, exactly as the in-memory audit computes them for the whole file."""
    table, kept, set_aside = net_table(table)  # kept: 1-based rows of the partition's table
    at = rows[kept - 1]  # input row of each line audited
    hits, columns = engine.run_table(table)
    findings = engine.findings(hits, columns)
    if len(findings) != len(hits):  # the merge orders findings by their hits' keys: one finding per hit
        raise RuntimeError(f"{len(hits)} hits rendered as {len(findings)} findings")
    quarantined = columns.quarantined()
    n_lines = table.num_rows - len(quarantined)
    quarantined = [replace(q, row=int(at[q.row - 1])) for q in quarantined] + \
        [replace(x, row=int(rows[x.row - 1])) for x in set_aside]
    key = (at[hits.line], hits.rule.astype(np.int64), hits.point.astype(np.int64))
    out = findings_table(findings)
    engine.release()  # this partition's lines go before the next is read
    return out, key, quarantined, n_lines


def _merge(tables: list, keys: list) -> pa.Table:
    """The partitions' findings in the in-memory run's order: by (input row, rule, knowledge row), ties kept
    in their partition's order (all findings of a line come from one partition)."""
    if not tables:
        return findings_table([])
    table = pa.concat_tables(tables).combine_chunks()
    row, rule, point = (np.concatenate([k[i] for k in keys]) for i in range(3))
    seq = np.arange(row.size)
    order = np.lexsort((seq, point, rule, row))
    return table.take(pa.array(order, pa.int64())).combine_chunks().cast(FINDING_SCHEMA)


def _groups(k: int, shared: list) -> list:
    """Partitions audited together: each alone, except those that share an encounter (union-find)."""
    parent = list(range(k))

    def root(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for a, b in shared:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict = {}
    for p in range(k):
        groups.setdefault(root(p), []).append(p)
    return [groups[r] for r in sorted(groups)]
