"""Process-wide memory advice for a batch audit process (``claimaudit audit`` and the batch benchmarks).

numpy asks the kernel to back each large array with transparent huge pages (madvise MADV_HUGEPAGE).
Where the kernel compacts memory on demand for such advised memory (``defrag`` set to ``madvise``, the
usual default, and costly on VMs), the first touch of each fresh array can stall in compaction. A batch
audit allocates and frees arrays of millions of entries stage after stage and pays that every time: on
2026-11-22, on this project's 2-core VM, the cross-line engine at 10M lines spent 4.3 s of system time
in page faults with the advice and 1.8 s without (benches/RESULTS.md). Plain pages are faulted in
cheaply, so a batch process turns the advice off.

Arrow's buffers fare the same under its default allocator in pyarrow's wheels, mimalloc, which backs them
with huge pages: on 2026-11-23 reading the 10M-line cross-line claims (14 columns, one thread) took
5.5–7.7 s, 3.6–5.9 s of it system time in 16–41k faults, against 2.9–3.7 s (about 1 s system time) from
jemalloc or the system allocator, three alternations each. A batch process takes Arrow's buffers from
jemalloc (the system allocator where a build has none), unless ARROW_DEFAULT_MEMORY_POOL names one.
"""
from __future__ import annotations

import os


def advise_plain_pages() -> bool:
    """Stop numpy advising huge pages for new arrays in this process, and Arrow allocating them (see above);
    returns whether numpy's advice was on. A process-wide setting: only the batch entry points call it,
    never a library import."""
    import numpy as np
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    plain_arrow_pool()
    return bool(setter(False)) if setter is not None else False


def plain_arrow_pool() -> None:
    """Arrow's default memory pool set to jemalloc, else the system allocator (mimalloc's huge pages are
    what a batch process avoids), unless ARROW_DEFAULT_MEMORY_POOL chose one."""
    import pyarrow as pa
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())
