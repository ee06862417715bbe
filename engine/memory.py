"""Process-wide memory advice for a batch audit process (``claimaudit audit`` and the batch benchmarks).

numpy asks the kernel to back each large array with transparent huge pages (madvise MADV_HUGEPAGE).
Where the kernel compacts memory on demand for such advised memory (``defrag`` set to ``madvise``, the
usual default, and costly on VMs), the first touch of each fresh array can stall in compaction. A batch
audit allocates and frees arrays of millions of entries stage after stage and pays that every time: on
2026-11-22, on this project's 2-core VM, the cross-line engine at 10M lines spent 4.3 s of system time
in page faults with the advice and 1.8 s without (benches/RESULTS.md). Plain pages are faulted in
cheaply, so a batch process turns the advice off.
"""
from __future__ import annotations


def advise_plain_pages() -> bool:
    """Stop numpy advising huge pages for new arrays in this process; returns whether it was on. A
    process-wide setting: only the batch entry points call it, never a library import."""
    import numpy as np
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return bool(setter(False)) if setter is not None else False
