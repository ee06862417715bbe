"""Pure-Python twins of the range kernels in _window.pyx (same signatures, same results)."""
from __future__ import annotations

import numpy as np


def range_distinct(lo, hi, prev):
    out = np.zeros(len(lo), np.float64)
    for q in range(len(lo)):
        a = lo[q]
        out[q] = sum(1 for j in range(a, hi[q]) if prev[j] < a)
    return out


def range_overlap(lo, hi, member_line, query_line, supply_end, supply_known, query_day):
    out = np.zeros(len(lo), np.float64)
    for q in range(len(lo)):
        best = 0.0
        for j in range(lo[q], hi[q]):
            if member_line[j] != query_line[q] and supply_known[j]:
                best = max(best, float(supply_end[j] - query_day[q]))
        out[q] = best
    return out
