"""A claims file split by patient into K partition files, for audits larger than memory.

The input is streamed (Parquet row batches, CSV blocks), reading only the columns the audit reads, and
each row is written to one of K Parquet files in a temporary directory with its 1-based input row number
(``ROW``). Where a row goes (``Router``):

* a line with a patient (``psn_no``, trimmed as the row reader trims it) goes to the partition of a stable
  64-bit hash of that text, so every line of a patient is in one partition;
* a line without a patient goes with its encounter (``mdtrt_id``): to the partition of the first line of the
  same encounter that has a patient, else by the hash of the encounter id, else to partition 0. Encounter
  and prescription scopes group by ``mdtrt_id`` alone, so such a line meets the same lines as in one run;
* a refund line goes where the line it refunds went (connectors/netting.py pairs them by line id over the
  whole input: the last valid line with the id a refund names), following refunds of refunds, so netting
  gives what it gives over the whole file even where a refund's patient differs from its original's.

Rows stay in input order within a partition. Nothing here logs or reports a patient identifier.
"""
from __future__ import annotations

import csv
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .claims import CLAIM_FIELDS, _UNIQUE_TEXT, ClaimsError, _read_problem
from .netting import _mask, _refund_rows, _trimmed

ROW = "__claimaudit_input_row"  # 1-based row of the input file
BATCH_ROWS = 1 << 18  # rows read at a time; all partitions together buffer about as many before writing
_ROUTING = ("psn_no", "mdtrt_id", "feedetl_sn", "init_feedetl_sn", "vali_flag")


class PartitionError(Exception):
    """The partition files cannot be written or read back (temporary directory missing, disk full)."""


# ---- a stable hash of text ------------------------------------------------------------------------

_BASE = 0x100000001B3  # FNV's 64-bit prime, as the polynomial's base
_MASK = (1 << 64) - 1


def _powers(n: int) -> np.ndarray:
    out, p = np.empty(max(n, 1), np.uint64), 1
    for i in range(len(out)):
        out[i] = p
        p = (p * _BASE) & _MASK
    return out


_POWERS = _powers(256)


def text_hash64(values) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of each value's UTF-8 bytes (Σ byte·B^i mod 2^64, the length mixed in, then splitmix64's
    finaliser), and whether there is a value. The same on every machine and every run (not Python's hash)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = pc.cast(arr, pa.large_string())
    n = len(arr)
    valid = _mask(pc.is_valid(arr))
    if n == 0:
        return np.zeros(0, np.uint64), valid
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int64, count=arr.offset + n + 1)[arr.offset:]
    lengths = np.diff(offsets)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, np.uint8, count=hi)[lo:] if hi > lo else np.zeros(0, np.uint8)
    global _POWERS
    if lengths.size and int(lengths.max()) > len(_POWERS):
        _POWERS = _powers(int(lengths.max()))
    pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(offsets[:-1] - lo, lengths)
    with np.errstate(over="ignore"):
        terms = data.astype(np.uint64) * _POWERS[pos]
        sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
        h = sums[offsets[1:] - lo] - sums[offsets[:-1] - lo]  # wraps modulo 2^64, as the sum does
        h ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return np.where(valid, h, np.uint64(0)), valid


def _slot(h: np.ndarray, k: int) -> np.ndarray:
    return (h % np.uint64(k)).astype(np.int32)


# ---- reading the input in batches -----------------------------------------------------------------


@dataclass
class ClaimsSource:
    """A claims file read a batch at a time, ``names`` (stripped) of the columns chosen by ``select``."""

    path: Path
    select: object = None
    names: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # stripped name -> name in the file
    types: dict = field(default_factory=dict)
    kind: str = "parquet"

    def __post_init__(self):
        path = self.path
        if not path.exists():
            raise ClaimsError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv", ".txt"):
            raise ClaimsError(f"{path}: unsupported file type '{suffix}' (use .parquet or .csv)")
        self.kind = "parquet" if suffix == ".parquet" else "csv"
        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq
                schema = pq.read_schema(path)
                raw_types = {n: schema.field(n).type for n in schema.names}
            else:
                with path.open(encoding="utf-8-sig", newline="") as fh:
                    raw_types = {n: pa.string() for n in next(csv.reader(fh), [])}
        except Exception as e:
            raise ClaimsError(f"{path}: cannot read: {_read_problem(path, e)}") from None
        self.raw = {n.strip(): n for n in raw_types}
        types = {n.strip(): t for n, t in raw_types.items()}
        chosen = set(types) if self.select is None else set(self.select(types))
        self.names = [n for n in self.raw if n in chosen]
        self.types = {n: types[n] for n in self.names}

    def row_count(self) -> int | None:
        """Rows of a Parquet file (its metadata); an estimate for CSV from the first MiB's line lengths."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq
            return pq.ParquetFile(self.path).metadata.num_rows
        size = self.path.stat().st_size
        with self.path.open("rb") as fh:
            sample = fh.read(1 << 20)
        if not sample:
            return 0
        lines = max(sample.count(b"\n"), 1)
        return max(int(size / (len(sample) / lines)) - 1, 0)

    def dictionary_columns(self) -> list[str]:
        """The columns an in-memory read takes as dictionaries (connectors/claims.py ``_read_selected``)."""
        if self.kind != "parquet" or self.select is None:
            return []
        return [n for n in self.names if n in CLAIM_FIELDS and n not in _UNIQUE_TEXT
                and CLAIM_FIELDS[n].type == "text" and pa.types.is_string(self.types[n])]

    def batches(self, names: list | None = None):
        """Record batches of the ``names`` columns (default: all chosen), with stripped names."""
        names = self.names if names is None else [n for n in names if n in self.raw]
        raw = [self.raw[n] for n in names]
        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq
                reader = pq.ParquetFile(self.path).iter_batches(batch_size=BATCH_ROWS, columns=raw)
            else:
                import pyarrow.csv as pacsv
                reader = pacsv.open_csv(self.path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                        convert_options=pacsv.ConvertOptions(
                                            column_types={n: pa.string() for n in raw}, include_columns=raw,
                                            strings_can_be_null=True))
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, names=names) if raw else batch
        except ClaimsError:
            raise
        except OSError as e:
            raise ClaimsError(f"{self.path}: cannot read: {_read_problem(self.path, e)}") from None
        except pa.ArrowException as e:
            raise ClaimsError(f"{self.path}: cannot read: {_read_problem(self.path, e)}") from None


# ---- where each row goes --------------------------------------------------------------------------


@dataclass
class Router:
    """Each row's partition: by patient, with the exceptions of the module docstring decided up front
    (``overrides``: sorted 0-based rows and their partitions)."""

    k: int
    override_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    override_parts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def route(self, batch: pa.RecordBatch, start: int) -> np.ndarray:
        part = self.by_patient(batch)
        lo, hi = np.searchsorted(self.override_rows, [start, start + batch.num_rows])
        if hi > lo:
            part[self.override_rows[lo:hi] - start] = self.override_parts[lo:hi]
        return part

    def by_patient(self, batch: pa.RecordBatch) -> np.ndarray:
        """Partition by the patient's hash; -1 where the line has no patient (the overrides place those)."""
        if "psn_no" not in batch.schema.names:
            return np.zeros(batch.num_rows, np.int32)
        h, known = text_hash64(_trimmed(batch.column("psn_no")))
        return np.where(known, _slot(h, self.k), -1).astype(np.int32)


def plan_routes(source: ClaimsSource, k: int) -> Router:
    """The router for ``source``: a first pass over the routing columns finds the lines without a patient
    and the refund lines; a second, only if there are any, finds their encounters' and originals' places."""
    router = Router(k)
    present = [n for n in _ROUTING if n in source.raw]
    if "psn_no" not in present:
        return router
    found = _Specials()
    start = 0
    for batch in source.batches(present):
        found.collect(batch, start, router)
        start += batch.num_rows
    if not found.any():
        return router
    start = 0
    for batch in source.batches(present):
        found.locate(batch, start, router)
        start += batch.num_rows
    router.override_rows, router.override_parts = found.resolve(router)
    return router


class _Specials:
    """Lines without a patient and refund lines, and where their encounters and originals are."""

    def __init__(self):
        self.orphans, self.orphan_encounters = [], []  # rows without a patient, their encounter ids
        self.refunds, self.refund_originals = [], []  # refund rows, the line ids they name
        self.refund_own = []  # the partition of each refund's own patient (-1: none)

    def collect(self, batch: pa.RecordBatch, start: int, router: Router) -> None:
        names = batch.schema.names
        orphan = ~_mask(pc.is_valid(_trimmed(batch.column("psn_no"))))
        if orphan.any():
            rows = np.flatnonzero(orphan)
            self.orphans.append(rows + start)
            enc = _trimmed(batch.column("mdtrt_id")) if "mdtrt_id" in names else pa.nulls(batch.num_rows, pa.string())
            self.orphan_encounters.append(enc.take(pa.array(rows)))
        refund = _refunds(batch)
        if refund is not None and refund.any():
            rows = np.flatnonzero(refund)
            self.refunds.append(rows + start)
            self.refund_originals.append(_trimmed(batch.column("init_feedetl_sn")).take(pa.array(rows)))
            self.refund_own.append(router.by_patient(batch)[rows])

    def any(self) -> bool:
        return bool(self.orphans or self.refunds)

    def locate(self, batch: pa.RecordBatch, start: int, router: Router) -> None:
        """Per distinct encounter of the orphans, the first partition of a line of it that has a patient; per
        distinct line id refunds name, the last valid line with that id and its partition (-1: no patient)."""
        if not hasattr(self, "enc_ids"):
            self._prepare()
        part = router.by_patient(batch)
        names = batch.schema.names
        if len(self.enc_ids) and "mdtrt_id" in names:
            at = pc.index_in(_trimmed(batch.column("mdtrt_id")), value_set=self.enc_ids).fill_null(-1)
            at = at.to_numpy(zero_copy_only=False).astype(np.int64)
            hit = np.flatnonzero((at >= 0) & (part >= 0))
            if hit.size:
                e = at[hit]
                e, first = np.unique(e, return_index=True)
                new = self.enc_part[e] < 0
                self.enc_part[e[new]] = part[hit[first[new]]]
        if len(self.sn_ids):
            at = pc.index_in(_trimmed(batch.column("feedetl_sn")), value_set=self.sn_ids).fill_null(-1)
            at = at.to_numpy(zero_copy_only=False).astype(np.int64)
            hit = np.flatnonzero((at >= 0) & _valid_lines(batch))
            if hit.size:
                s = at[hit]
                rev = np.unique(s[::-1], return_index=True)  # the last line per id: first from the end
                last = hit[::-1][rev[1]]
                self.sn_row[rev[0]] = last + start
                self.sn_part[rev[0]] = part[last]

    def _prepare(self) -> None:
        self.orphans = np.concatenate(self.orphans) if self.orphans else np.zeros(0, np.int64)
        enc = pa.chunked_array(self.orphan_encounters, pa.string()) if self.orphan_encounters else pa.chunked_array([], pa.string())
        self.orphan_encounters = enc.combine_chunks()
        self.enc_ids = pc.unique(self.orphan_encounters.drop_null())
        self.enc_part = np.full(len(self.enc_ids), -1, np.int32)
        self.refunds = np.concatenate(self.refunds) if self.refunds else np.zeros(0, np.int64)
        orig = pa.chunked_array(self.refund_originals, pa.string()) if self.refund_originals else pa.chunked_array([], pa.string())
        self.refund_originals = orig.combine_chunks()
        self.sn_ids = pc.unique(self.refund_originals)
        self.sn_row = np.full(len(self.sn_ids), -1, np.int64)
        self.sn_part = np.full(len(self.sn_ids), -1, np.int32)
        self.refund_own = np.concatenate(self.refund_own) if self.refund_own else np.zeros(0, np.int32)

    def resolve(self, router: Router) -> tuple[np.ndarray, np.ndarray]:
        """(rows, partitions) of the lines not placed by their own patient, sorted by row."""
        if not hasattr(self, "enc_ids"):
            self._prepare()
        k = router.k
        place: dict = {}
        # orphans: with their encounter's patient, else by the encounter id's hash, else partition 0
        e = pc.index_in(self.orphan_encounters, value_set=self.enc_ids).fill_null(-1)
        e = e.to_numpy(zero_copy_only=False).astype(np.int64)
        found = np.where(e >= 0, self.enc_part[np.clip(e, 0, None)] if len(self.enc_part) else -1, -1)
        h, has = text_hash64(self.orphan_encounters)
        by_enc = np.where(has, _slot(h, k), 0).astype(np.int32)
        orphan_part = np.where(found >= 0, found, by_enc)
        place.update(zip(self.orphans.tolist(), orphan_part.tolist()))
        if len(self.refunds):
            place.update(self._refund_places(place))
        rows = np.array(sorted(place), np.int64)
        return rows, np.array([place[r] for r in rows.tolist()], np.int32)

    def _refund_places(self, place: dict) -> dict:
        """Each refund's partition: its original's (following refunds of refunds to the first line that is not
        one); a refund without an original stays where its own patient (or encounter) puts it."""
        s = pc.index_in(self.refund_originals, value_set=self.sn_ids).to_numpy(zero_copy_only=False).astype(np.int64)
        target = self.sn_row[s]
        target_part = self.sn_part[s]
        # the partition each refund's own line would take: its patient's, or as an orphan
        own = {r: (p if p >= 0 else place[r]) for r, p in zip(self.refunds.tolist(), self.refund_own.tolist())}
        index = {r: i for i, r in enumerate(self.refunds.tolist())}
        out: dict = {}
        for i, r in enumerate(self.refunds.tolist()):
            chain, seen, j = [], set(), i
            while True:
                if int(self.refunds[j]) in out:
                    where = out[int(self.refunds[j])]
                    break
                chain.append(j)
                seen.add(j)
                t = int(target[j])
                if t < 0:  # nothing to net into: the refund's own place
                    where = own[int(self.refunds[j])]
                    break
                nxt = index.get(t)
                if nxt is None:  # an ordinary line: its place
                    where = place.get(t, int(target_part[j]))
                    break
                if nxt in seen:  # refunds naming each other: all of them where the first of the cycle goes
                    where = own[int(self.refunds[min(chain[chain.index(nxt):])])]
                    break
                j = nxt
            for c in chain:
                out[int(self.refunds[c])] = where
        return out


def _refunds(batch: pa.RecordBatch) -> np.ndarray | None:
    """Refund lines as net_table finds them (a valid line naming another line), or None without the columns."""
    names = batch.schema.names
    if "init_feedetl_sn" not in names or "feedetl_sn" not in names:
        return None
    sn, orig = _trimmed(batch.column("feedetl_sn")), _trimmed(batch.column("init_feedetl_sn"))
    return _refund_rows(sn, orig, _valid_lines(batch))


def _valid_lines(batch: pa.RecordBatch) -> np.ndarray:
    """Lines netting keeps (not vali_flag 0)."""
    if "vali_flag" not in batch.schema.names:
        return np.ones(batch.num_rows, bool)
    return ~_mask(pc.equal(_trimmed(batch.column("vali_flag")), "0"))


# ---- the partition files --------------------------------------------------------------------------


@dataclass
class Partitions:
    """K Parquet files of claim lines (each with its input row, ``ROW``) in a temporary directory that
    ``close`` removes (the ``with`` block does, also on error)."""

    source: ClaimsSource
    k: int
    directory: Path
    rows: list = field(default_factory=list)  # lines per partition
    shared_encounters: list = field(default_factory=list)  # pairs of partitions holding lines of one encounter

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def file(self, p: int) -> Path:
        return _partition_file(self.directory, p)

    def files(self) -> "PartitionFiles":
        """What reading the written partitions back needs, for this process or a worker process."""
        return PartitionFiles(self.directory, tuple(self.rows), tuple(self.source.dictionary_columns()))

    def read(self, parts) -> tuple[pa.Table, np.ndarray]:
        """The lines of the partitions ``parts`` in input order (see ``PartitionFiles.read``)."""
        return self.files().read(parts)


@dataclass(frozen=True)
class PartitionFiles:
    """The written partition files and how to read them back: plain values, so a worker process of a
    parallel audit (engine/partitioned.py) gets them pickled and reads its partitions itself."""

    directory: Path
    rows: tuple  # lines per partition
    dictionary_columns: tuple  # read as dictionaries, as an in-memory read reads them

    def read(self, parts) -> tuple[pa.Table, np.ndarray]:
        """The lines of the partitions ``parts`` in input order, typed as an in-memory read types them, and
        their input rows (1-based); (None, no rows) when the partitions are empty."""
        import pyarrow.parquet as pq
        tables = []
        for p in parts:
            if self.rows[p]:
                path = _partition_file(self.directory, p)
                try:
                    tables.append(pq.read_table(path, read_dictionary=list(self.dictionary_columns)))
                except (OSError, pa.ArrowException) as e:
                    raise PartitionError(f"{path}: cannot read back: {_first_line(e)}") from None
        if not tables:
            return None, np.zeros(0, np.int64)
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        rows = table.column(ROW).to_numpy()
        if len(tables) > 1:  # lines of several partitions: back in input order
            order = np.argsort(rows, kind="stable")
            table, rows = table.take(pa.array(order)), rows[order]
        return table.drop_columns([ROW]), np.ascontiguousarray(rows, np.int64)


def _partition_file(directory: Path, p: int) -> Path:
    return directory / f"part-{p:04d}.parquet"


def split_claims(source: ClaimsSource, k: int, temp_dir: str | None = None, whole_encounters: bool = False) -> Partitions:
    """Stream ``source`` into ``k`` partition files under a new directory in ``temp_dir`` (default: the
    system's). ``whole_encounters``: also find the encounters whose lines went to different partitions (two
    patients under one ``mdtrt_id``): ``Partitions.shared_encounters`` lists such pairs of partitions."""
    router = plan_routes(source, k)
    try:
        directory = Path(tempfile.mkdtemp(prefix="claimaudit-partitions-", dir=temp_dir))
    except OSError as e:
        where = temp_dir or tempfile.gettempdir()
        raise PartitionError(f"{where}: cannot create a directory for partition files: {_first_line(e)}") from None
    parts = Partitions(source, k, directory, [0] * k)
    try:
        _write_partitions(source, router, parts, _EncounterCheck() if whole_encounters else None)
    except BaseException:
        parts.close()
        raise
    return parts


def _write_partitions(source: ClaimsSource, router: Router, parts: Partitions, check) -> None:
    import pyarrow.parquet as pq
    writers, pending = {}, [[] for _ in range(parts.k)]
    flush_at = max(BATCH_ROWS // parts.k, 1 << 13)  # rows of a partition's row group

    def flush(p):
        table = pa.Table.from_batches(pending[p])
        pending[p] = []
        try:
            if p not in writers:
                writers[p] = pq.ParquetWriter(parts.file(p), table.schema)
            writers[p].write_table(table, row_group_size=max(table.num_rows, 1))
        except (OSError, pa.ArrowException) as e:
            raise PartitionError(f"{parts.directory}: cannot write partition files: {_first_line(e)}") from None

    start = 0
    try:
        for batch in source.batches():
            n = batch.num_rows
            part = router.route(batch, start)
            batch = batch.append_column(ROW, pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)))
            if check is not None:
                check.add(batch, part)
            order = np.argsort(part, kind="stable")  # rows of each partition together, in input order
            bounds = np.searchsorted(part[order], np.arange(parts.k + 1))
            for p in range(parts.k):
                if bounds[p + 1] > bounds[p]:
                    pending[p].append(batch.take(pa.array(order[bounds[p]:bounds[p + 1]])))
                    parts.rows[p] += int(bounds[p + 1] - bounds[p])
                    if sum(b.num_rows for b in pending[p]) >= flush_at:
                        flush(p)
            start += n
        for p in range(parts.k):
            if pending[p]:
                flush(p)
    finally:
        for w in writers.values():
            try:
                w.close()
            except (OSError, pa.ArrowException) as e:
                raise PartitionError(f"{parts.directory}: cannot write partition files: {_first_line(e)}") from None
    if check is not None:
        parts.shared_encounters = check.shared()


class _EncounterCheck:
    """Whether the lines of an encounter (``mdtrt_id``) all went to one partition, by 64-bit hashes of the
    encounter ids (a collision can only report a sharing that is not there: the audit then merges
    partitions it need not, never splits an encounter). Refund and invalid lines do not count: netting
    takes them out before any rule groups lines."""

    def __init__(self):
        self.pairs = []  # unique (hash, partition) pairs, per batch

    def add(self, batch: pa.RecordBatch, part: np.ndarray) -> None:
        if "mdtrt_id" not in batch.schema.names:
            return
        h, known = text_hash64(_trimmed(batch.column("mdtrt_id")))
        refund = _refunds(batch)
        keep = known & _valid_lines(batch) & (~refund if refund is not None else True)
        pairs = np.unique(np.stack([h[keep], part[keep].astype(np.uint64)], axis=1), axis=0)
        self.pairs.append(pairs)
        if len(self.pairs) >= 64:
            self.pairs = [np.unique(np.concatenate(self.pairs), axis=0)]

    def shared(self) -> list:
        """Pairs of partitions that hold lines of one encounter."""
        if not self.pairs:
            return []
        pairs = np.unique(np.concatenate(self.pairs), axis=0)
        h, p = pairs[:, 0], pairs[:, 1].astype(np.int64)
        same = h[1:] == h[:-1]  # sorted by hash, then partition: neighbours with one hash
        return sorted({(int(a), int(b)) for a, b in zip(p[:-1][same], p[1:][same])})


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
