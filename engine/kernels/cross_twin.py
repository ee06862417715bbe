"""The inline screener's per-request index for cross-line rules (engine/inline_cross.py), in Python: the
twin of ``_cross.pyx``, selected with ``CLAIMAUDIT_KERNELS=python``. Same signatures, same results
(tests/test_cross_kernels.py).

A request's lines are indexed once: each line's time of service and what its code means (``facts``: the pool
ids the line belongs to, its candidates, its plain pairs — remembered across requests by the caller), and the
set of pool ids present. A pool's lines are listed only when a rule asks for them (most pools are never
asked for: one line's code matches several knowledge rows, a few rules look at them)."""
from __future__ import annotations

_TIME = "fee_ocur_time"


def index_request(lines: list, fields: tuple, memos: tuple, miss, no_facts: tuple) -> tuple:
    """(times, facts, present) of a request's lines.

    ``times``: each line's ``fee_ocur_time`` (None: no time of service). ``facts``: per key field (in
    ``fields`` order) each line's facts — ``memos[f][code]``, else ``miss(field, code)`` (which remembers
    them), ``no_facts`` for a line without the field; ``facts[0]`` of a line are the pool ids it belongs to.
    ``present``: the pool ids of the lines that have a time of service (a line without one is in no pool)."""
    times = [line.get(_TIME) for line in lines]
    facts = []
    present: set = set()
    for field, memo in zip(fields, memos):
        per = []
        for k, line in enumerate(lines):
            code = line.get(field)
            if code is None:
                got = no_facts
            else:
                got = memo.get(code)
                if got is None:
                    got = miss(field, code)
            per.append(got)
            if times[k] is not None:
                present.update(got[0])
        facts.append(per)
    return times, facts, present


def pool_members(facts: list, times: list, pid) -> list:
    """The lines of pool ``pid`` (with a time of service, whose facts list it), in input order. Pool ids are
    compared by identity: ``pid`` must be the object the facts hold (CrossLineRules.pool_id hands out one
    object per pool)."""
    out = []
    for k in range(len(times)):
        if times[k] is None:
            continue
        for per in facts:
            if any(p is pid for p in per[k][0]):
                out.append(k)
                break
    return out


def passed_over(facts: list, times: list, present: set, line, i: int, no_facts: tuple) -> bool:
    """Whether line ``i`` (``line``) is decided by its code alone (one key field: ``facts`` of it): it is a
    candidate of no rule but plain pairs, and no line of the request matches the other side of any of those,
    whose window is known (a time of service; the fields their groups are made of are there)."""
    got = facts[i]
    if got[1] or got is no_facts:
        return False
    plain = got[2]
    if plain is None:
        return True
    if times[i] is None or not present.isdisjoint(plain[0]):
        return False
    for name in plain[1]:
        if line.get(name) is None:
            return False
    return True


def position(lines: list, line, start: int) -> int:
    """The index of ``line`` (by identity) in ``lines``, looking from ``start`` on first; -1 if absent."""
    n = len(lines)
    for k in range(start, n):
        if lines[k] is line:
            return k
    for k in range(min(start, n)):
        if lines[k] is line:
            return k
    return -1
