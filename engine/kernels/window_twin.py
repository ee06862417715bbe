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


# ---- ordering and grouping --------------------------------------------------------------------------------

def _bytes_at(addr, length) -> bytes:
    """The bytes at a buffer address (the Cython kernel reads them in place)."""
    import ctypes
    return ctypes.string_at(int(addr), int(length)) if length else b""


def total_order(patient, n_patients, time, time_known, encounter, sn_addr, sn_len):
    def key(i):
        return (int(patient[i]), bool(time_known[i]), int(time[i]) if time_known[i] else 0, int(encounter[i]),
                _bytes_at(sn_addr[i], sn_len[i]))
    return np.array(sorted(range(len(patient)), key=key), np.int64)


def merge_sides(key_line, key_row, partner_line, partner_row):
    flags: dict = {}
    for lines, rows, f in ((key_line, key_row, 1), (partner_line, partner_row, 2)):
        for line, row in zip(lines.tolist(), rows.tolist()):
            flags[(line, row)] = flags.get((line, row), 0) | f
    pairs = sorted(flags)
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64),
            np.array([flags[p] for p in pairs], np.int8))


def group_runs(group, n_groups, key):
    perm = np.array(sorted(range(len(group)), key=lambda i: (int(group[i]), int(key[i]), i)), np.int64)
    start = np.zeros(n_groups + 1, np.int64)
    np.add.at(start, np.asarray(group, np.int64) + 1, 1)
    return perm, np.cumsum(start)


def run_bounds(m_key, m_rank, m_day, group_start, q_group, q_key, q_rank, q_first_day, mode):
    n = len(q_group)
    lo, hi, own = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.uint8)
    for q in range(n):
        g = q_group[q]
        if g < 0:
            continue
        run = [j for j in range(group_start[g], group_start[g + 1]) if m_key[j] == q_key[q]]
        if not run:
            lo[q] = hi[q] = np.searchsorted(m_key[group_start[g]:group_start[g + 1]], q_key[q]) + group_start[g]
            continue
        own[q] = any(m_rank[j] == q_rank[q] for j in run)
        keep = [j for j in run if (mode == 0 or m_rank[j] < q_rank[q] or (mode == 1 and m_rank[j] == q_rank[q]))]
        first = [j for j in run if m_day[j] >= q_first_day[q]]
        lo[q] = max(run[0], first[0] if first else run[-1] + 1)
        hi[q] = keep[-1] + 1 if keep else run[0]
    return lo, hi, own


def _looks(looks, side, flag):
    if looks == 0:
        return side == 1
    if looks == 1:
        return side == 2
    return (flag & (3 - side)) != 0


def pair_sweep(e_line, e_row, e_flag, group, member_ok, day, first_day, looks, strict):
    n = len(e_line)
    rolling = len(first_day) == n and n > 0
    out = np.zeros(n, np.uint8)
    by_group: dict = {}
    for i in range(n):
        by_group.setdefault(int(group[e_line[i]]), []).append(i)
    for g, entries in by_group.items():
        if g < 0:
            continue
        for i in entries:
            for side in (1, 2):
                if not _looks(looks, side, e_flag[i]):
                    continue
                for j in entries:
                    m = e_line[j]
                    if not (member_ok[m] and e_flag[j] & side and e_row[j] == e_row[i]):
                        continue
                    if strict and m < e_line[i] and (not rolling or day[m] >= first_day[i]):
                        out[i] = 1
                    if not strict and m != e_line[i]:
                        out[i] = 1
    return out


def contiguous_groups(patient, period, known):
    out = np.full(len(patient), -1, np.int64)
    seen: dict = {}
    for i in range(len(patient)):
        if patient[i] >= 0 and known[i]:
            out[i] = seen.setdefault((int(patient[i]), int(period[i])), len(seen))
    return out


def expand_entries(codes, good, starts, rows, flags):
    out = [(i, int(rows[j]), int(flags[j])) for i, c in enumerate(codes.tolist()) if good[i] and c >= 0
           for j in range(starts[c], starts[c + 1])]
    return (np.array([o[0] for o in out], np.int64), np.array([o[1] for o in out], np.int64),
            np.array([o[2] for o in out], np.int8))


def edges_may_be_blank(addr, length):
    for a, n in zip(addr, length):
        if n:
            b = _bytes_at(a, n)
            if b[0] <= 32 or b[0] >= 128 or b[-1] <= 32 or b[-1] >= 128:
                return True
    return False
