"""The inline screener's per-request index for cross-line rules (engine/inline_cross.py), in Python: the
twin of ``_cross.pyx``, selected with ``CLAIMAUDIT_KERNELS=python``. Same signatures, same results
(tests/test_cross_kernels.py).

A request's lines are indexed once: each line's time of service and what its code means (``facts``: the pool
ids the line belongs to, its candidates, its plain pairs — remembered across requests by the caller), and the
pools present with their lines (``Pools``: listed as the index goes, so a rule asking for a pool's lines looks
them up instead of scanning the request again; most pools are never asked for)."""
from __future__ import annotations

from array import array

_TIME = "fee_ocur_time"


class Pools:
    """The pools present in a request (ids of pools with a timed line) and each one's lines, in input order."""

    def __init__(self):
        self._members: dict = {}  # pool id -> its lines

    def add(self, pid: int, line: int) -> None:
        got = self._members.get(pid)
        if got is None:
            self._members[pid] = [line]
        elif got[-1] != line:  # a line listed twice is kept once
            got.append(line)

    def __contains__(self, pid) -> bool:
        return type(pid) is int and pid in self._members

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self):
        return iter(sorted(self._members))

    def isdisjoint(self, pids) -> bool:
        return not any(pid in self for pid in pids)

    def members(self, pid) -> list:
        """The lines of pool ``pid``, in input order ([] when it is not present)."""
        return list(self._members[pid]) if pid in self else []


def index_request(lines: list, fields: tuple, memos: tuple, miss, no_facts: tuple) -> tuple:
    """(times, facts, present) of a request's lines.

    ``times``: each line's ``fee_ocur_time`` (None: no time of service). ``facts``: per key field (in
    ``fields`` order) each line's facts — ``memos[f][code]``, else ``miss(field, code)`` (which remembers
    them), ``no_facts`` for a line without the field; ``facts[0]`` of a line are the pool ids (ints from 0) it
    belongs to, packed as C ints (``array('i').tobytes()``). ``present``: the pools of the lines that have a time
    of service (a line without one is in no pool), with their lines (Pools)."""
    times = [line.get(_TIME) for line in lines]
    facts = []
    for field, memo in zip(fields, memos):
        per = []
        for line in lines:
            code = line.get(field)
            if code is None:
                got = no_facts
            else:
                got = memo.get(code)
                if got is None:
                    got = miss(field, code)
            per.append(got)
        facts.append(per)
    present = Pools()
    for k in range(len(lines)):  # line by line (not field by field): each pool's lines in input order
        if times[k] is not None:
            for per in facts:
                for pid in array("i", per[k][0]):
                    present.add(pid, k)
    return times, facts, present


def passed_over(facts: list, times: list, present: Pools, line, i: int, no_facts: tuple) -> bool:
    """Whether line ``i`` (``line``) is decided by its code alone (one key field: ``facts`` of it): it is a
    candidate of no rule but plain pairs, and no line of the request matches the other side of any of those,
    whose window is known (a time of service; the fields their groups are made of are there)."""
    got = facts[i]
    if got[1] or got is no_facts:
        return False
    plain = got[2]
    return plain is None or _alone(times, present, line, plain, i)


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


def current_lines(lines: list, current) -> list:
    """The indexes of the current lines: those whose ``feedetl_sn`` is in ``current`` (every line when None)."""
    if current is None:
        return list(range(len(lines)))
    return [k for k, line in enumerate(lines) if line["feedetl_sn"] in current]


def decide_current(req, indexes: list, no_facts: tuple, by_slot, decide_rows) -> list:
    """(line index, hits) of the current lines ``indexes`` that have hits, each line's hits as
    ``CrossRequest.decisions`` gives them, for a request whose rules are all keyed on one field
    (``CrossLineRules.quick``) and not narrowed to some rules. A line whose code is missing goes to ``decisions``
    itself; a line with plain pairs only, none of whose partners is in scope, is passed over (``passed_over``).
    A rule with a kernel shape is decided by ``decide_rows`` (the decider's ``decide``) directly, and only what
    it flags goes back to the request (``CrossRequest.verdicts``)."""
    lines, times, facts, present = req.lines, req.times, req.facts[0], req.present
    out = []
    for i in indexes:
        got = facts[i]
        if got is no_facts:
            hits = req.decisions(lines[i], i)
        else:
            cands, plain = got[1], got[2]
            alone = plain is None or _alone(times, present, lines[i], plain, i)
            if alone and not cands:
                continue
            hits = []
            for c, points in (cands if alone else plain[2] + cands):
                if c.shape is None:
                    req._decide(c, i, points, hits)
                    continue
                found = decide_rows(req.timeline(), c.shape, points, i)
                if found is not None:
                    req.verdicts(c, i, found, hits)
            if len(hits) > 1:
                hits.sort(key=by_slot)
        if hits:
            out.append((i, hits))
    return out


def _alone(times: list, present: Pools, line, plain: tuple, i: int) -> bool:
    """No partner of line ``i``'s plain pairs is in the request, and their window is known (CrossRequest._alone)."""
    if times[i] is None or not present.isdisjoint(plain[0]):
        return False
    for name in plain[1]:
        if line.get(name) is None:
            return False
    return True
