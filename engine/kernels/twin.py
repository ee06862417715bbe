"""Pure-Python twins of the Cython kernels: the same arguments, the same results, written for
clarity. They define what the kernels must compute."""
from __future__ import annotations

import numpy as np

_EPOCH = np.datetime64("1970-01-01", "D")


def age_years(birth_days, service_days):
    """Full years of age: whole years from birth to the service date (a birthday counts on its day)."""
    out = np.empty(len(birth_days), np.int32)
    for i in range(len(birth_days)):
        b = (_EPOCH + int(birth_days[i])).astype(object)
        d = (_EPOCH + int(service_days[i])).astype(object)
        out[i] = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return out


def _contains_sorted(items, lo, hi, value) -> bool:
    for j in range(lo, hi):
        if items[j] == value:
            return True
    return False


def prefix_any(pair_line, pair_row, line_main, list_ids, list_offsets, list_items,
               match_offsets, match_items, row_offsets, row_items):
    """For each (line, row) pair: does any code of the line (its main code, then its list) start with
    any prefix of the row? ``match_*`` lists, per code, the prefix ids it starts with."""
    out = np.zeros(len(pair_line), np.uint8)
    for p in range(len(pair_line)):
        li, ri = pair_line[p], pair_row[p]
        codes = []
        if line_main[li] >= 0:
            codes.append(line_main[li])
        lid = list_ids[li]
        if lid >= 0:
            codes.extend(list_items[list_offsets[lid]:list_offsets[lid + 1]])
        hit = False
        for c in codes:
            for q in match_items[match_offsets[c]:match_offsets[c + 1]]:
                if _contains_sorted(row_items, row_offsets[ri], row_offsets[ri + 1], q):
                    hit = True
                    break
            if hit:
                break
        out[p] = hit
    return out


def member(pair_line, pair_row, line_codes, row_offsets, row_items):
    """For each (line, row) pair: is the line's code one of the row's codes?"""
    out = np.zeros(len(pair_line), np.uint8)
    for p in range(len(pair_line)):
        c = line_codes[pair_line[p]]
        ri = pair_row[p]
        out[p] = c >= 0 and _contains_sorted(row_items, row_offsets[ri], row_offsets[ri + 1], c)
    return out
