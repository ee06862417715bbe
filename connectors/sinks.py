"""Where findings go: Parquet, CSV (UTF-8 with BOM so Excel shows Chinese) or JSON lines.

Files are written to a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

FORMATS = (".parquet", ".csv", ".jsonl")


class SinkError(Exception):
    pass


def write_records(records: list[dict], path: str | Path, schema: pa.Schema | None = None) -> Path:
    if path_suffix(path) == ".jsonl":
        return _write(path, records=records)
    table = pa.Table.from_pylist(records, schema=schema) if records or schema else pa.table({})
    return _write(path, table=table)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """An Arrow table to Parquet, CSV or JSON lines (one object per row, as write_records writes them)."""
    return _write(path, table=table)


def path_suffix(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SinkError(f"{path}: unsupported output type '{suffix}' (use {', '.join(FORMATS)})")
    return suffix


def _write(path: str | Path, table: pa.Table | None = None, records: list | None = None) -> Path:
    path = Path(path)
    suffix = path_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for r in (records if records is not None else table.to_pylist()):
                    fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        elif suffix == ".parquet":
            import pyarrow.parquet as pq
            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pacsv
            with tmp.open("wb") as fh:
                fh.write("\ufeff".encode())
                pacsv.write_csv(table, fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
