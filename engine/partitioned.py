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

Workers (``--jobs N``): the groups are audited by N worker processes at once (fewer when there are fewer
groups; with one, in this process as above), started with "spawn": a fork after pyarrow has started its
thread pools is unsafe. Each worker builds its batch engine once, from the same rules path or bundle,
profile and stages as the parent (``EngineRecipe``; the kernels as CLAIMAUDIT_KERNELS, inherited), reads
the partition files of the groups it is given itself, and sends back what ``_audit_part`` returns; the
parent merges as above, so the files written are the ones one process writes. Each worker holds one
group's lines at a time: peak memory is about N times one partition's, besides the parent's findings. An
error a worker raises is raised again in the parent (a user's error is reported as the serial path reports
it); a worker that dies without a result (killed when memory ran out) raises ``WorkerLost``.
"""
from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from claimaudit.connectors.netting import net_table
from claimaudit.connectors.partition import ClaimsSource, PartitionFiles, split_claims

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
    workers: int = 1  # processes that audited the groups (1: this one)


@dataclass(frozen=True)
class EngineRecipe:
    """How the parent built its batch engine, for a worker process to build the same one: the rules path (or
    bundle), the local profile and the stages. Kernels follow CLAIMAUDIT_KERNELS, which workers inherit."""

    rules_path: str
    profile: str | None = None
    stages: frozenset | None = None

    def build(self):
        from .batch import BatchEngine
        from .loading import load_plan
        return BatchEngine(load_plan(self.rules_path, self.profile), stages=self.stages)


def audit_partitioned(engine, source: ClaimsSource, k: int, temp_dir: str | None = None, jobs: int = 1,
                      recipe: EngineRecipe | None = None) -> AuditOutcome:
    """Audit ``source`` in ``k`` partitions by patient with the batch ``engine`` (see the module docstring);
    with ``jobs`` > 1, in up to that many worker processes building their engines by ``recipe``."""
    with split_claims(source, k, temp_dir, whole_encounters(engine)) as parts:
        groups = _groups(k, parts.shared_encounters)
        files = parts.files()
        busy = [g for g in groups if any(files.rows[p] for p in g)]  # an empty group has nothing to audit
        workers = max(min(jobs, len(busy)), 1)
        if workers > 1:
            results = _in_workers(recipe, files, busy, workers)
        else:
            results = (_audit_part(engine, *files.read(group)) for group in busy)  # one group's lines at a time
        tables, keys, quarantined, n_lines = [], [], [], 0
        with closing(results):  # on error, running workers finish (the rest cancelled) before the files go
            for table, key, set_aside, lines in results:
                tables.append(table)
                keys.append(key)
                quarantined += set_aside
                n_lines += lines
    return AuditOutcome(_merge(tables, keys), sorted(quarantined, key=lambda q: q.row), n_lines, groups, workers)


class WorkerLost(Exception):
    """A worker process ended without returning its group's result (killed, most likely for memory)."""


def _in_workers(recipe: EngineRecipe, files: PartitionFiles, groups: list, workers: int):
    """Each group's ``_audit_part`` result, in group order, from ``workers`` processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    if recipe is None:
        raise ValueError("auditing in worker processes needs the recipe of the engine")
    context = multiprocessing.get_context("spawn")  # not fork: see the module docstring
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(recipe,))
    try:
        futures = [pool.submit(_audit_group, files, group) for group in groups]
        for future in futures:
            try:
                got = future.result()
            except BrokenProcessPool:
                raise WorkerLost(f"a worker process ended before returning its findings (killed, e.g. when memory "
                                 f"ran out: each of the {workers} workers holds one partition; try fewer --jobs or "
                                 "more --partitions)") from None
            yield got
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER_ENGINE = None  # a worker process's batch engine, or the exception building it raised


def _start_worker(recipe: EngineRecipe) -> None:
    """A worker's initializer: its engine, built once. A failure is kept and raised by each group it is
    given, so the parent reports it as it reports the same failure of its own (PlanError: one line)."""
    global _WORKER_ENGINE
    from .memory import advise_plain_pages
    advise_plain_pages()  # a batch process, as the parent is
    try:
        _WORKER_ENGINE = recipe.build()
    except Exception as e:  # noqa: BLE001 (raised again with the first group)
        _WORKER_ENGINE = e


def _audit_group(files: PartitionFiles, group: list):
    """In a worker: one group's ``_audit_part`` result, its lines read from the partition files here."""
    if isinstance(_WORKER_ENGINE, Exception):
        raise _WORKER_ENGINE
    return _audit_part(_WORKER_ENGINE, *files.read(group))


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
