"""Pure-Python twins of the inline screener's kernels (_inline.pyx): the same arguments, the same
results, written for clarity. They define what the kernels must compute."""
from __future__ import annotations

# kinds of a mapped field (DATE, DATETIME: parsed text of a known type, read like PARSED here; LIST: a list,
# converted like OTHER here; the compiled kernel reads the usual shapes of these itself)
TEXT, NUMBER, PARSED, OTHER, DATE, DATETIME, LIST = 0, 1, 2, 3, 4, 5, 6


def _first(sources: tuple, picks: tuple):
    for index, key in picks:
        v = sources[index].get(key)
        if v is not None:
            return v
    return None


def _typed(kind: int, v, memo, convert):
    if kind == TEXT and type(v) is str:
        return v.strip() or None
    if kind == NUMBER and (type(v) is float or type(v) is int):
        return float(v)
    if kind in (PARSED, DATE, DATETIME) and type(v) is str and v in memo:
        return memo[v]
    return convert(v)


def prepare(spec: tuple, n_sources: int) -> tuple:
    """``spec``: ((target, kind, picks, memo, convert), ...); picks: ((source index, key), ...) in precedence
    order over ``n_sources`` source dicts. (The compiled kernel indexes the picks by key here.)"""
    if any(index >= n_sources for entry in spec for index, _ in entry[2]):
        raise ValueError("a pick names a source that is not there")
    return spec


def typed_line(sources: tuple, base: dict, prepared: tuple) -> dict:
    """A copy of ``base`` with each spec field (target, kind, picks, memo, convert) set from the first
    (source index, key) pick that is not None, typed as ``coerce_fields`` types it (``convert`` is the
    general conversion: it raises on a value that cannot be read; ``memo`` holds parsed date texts)."""
    line = base.copy()
    for target, kind, picks, memo, convert in prepared:
        v = _first(sources, picks)
        if v is not None:
            line[target] = _typed(kind, v, memo, convert)
    return line


def _is_current(order: dict) -> bool:
    flag = order.get("curr_drord_flag")
    return flag is None or str(flag).strip() in ("", "1")


def order_lines(orders: list, extra: tuple, base: dict, prepared: tuple, lines: list, current: set) -> bool:
    """Each order (a dict) -> ``typed_line((order,) + extra, base, prepared)`` appended to ``lines``, its id to
    ``current`` when it is a current order (curr_drord_flag 1, blank or absent). False when an order is not
    a dict or its line has no id or national code: the general mapping then reports it."""
    for order in orders:
        if type(order) is not dict:
            return False
        line = typed_line((order,) + extra, base, prepared)
        if line.get("feedetl_sn") is None or line.get("med_list_codg") is None:
            return False
        lines.append(line)
        if _is_current(order):
            current.add(line["feedetl_sn"])
    return True


def _diagnoses(enc: dict):
    """{"codes", "main"} of an encounter's diagnoses as request_lines reads them (None when absent); None when
    they are irregular."""
    codes, main = None, None
    diags = enc.get("fsi_diagnose_dtos")
    if diags is not None:
        if type(diags) is not list:
            return None
        codes = []
        for d in diags:
            if type(d) is not dict:
                return None
            code = d.get("dise_codg")
            if code:
                codes.append(str(code).strip())
                if main is None and str(d.get("maindise_flag")) == "1":
                    main = codes[-1]
    return {"codes": codes or None, "main": main}


def _all_dicts(items) -> bool:
    return type(items) is list and all(type(item) is dict for item in items)


def map_request(doc: dict, encounter_spec: tuple, order_spec: tuple, empty: dict, begntime_picks: tuple):
    """A 3101 request -> (typed lines, ids of the current orders), or None when it is irregular (the general
    mapping then reports it): every patient's encounters, each typed once from itself, its patient and its
    diagnoses (``encounter_spec``, 3 sources), then its orders (``order_spec``: the order, and the encounter's
    raw begntime as picked by ``begntime_picks``)."""
    lines, current = [], set()
    patients = doc.get("patient_dtos")
    if not _all_dicts(patients):
        return None
    for patient in patients:
        encounters = patient.get("fsi_encounter_dtos")
        if not _all_dicts(encounters):
            return None
        for enc in encounters:
            extra = _diagnoses(enc)
            if extra is None:
                return None
            base = typed_line((enc, patient, extra), empty, encounter_spec)
            orders = enc.get("fsi_order_dtos")
            if type(orders) is not list:
                return None
            begntime = {"begntime": _first((enc, patient), begntime_picks)}
            if not order_lines(orders, (begntime,), base, order_spec, lines, current):
                return None
    return lines, current


# ---- decisions ---------------------------------------------------------------------------------------------


def compile_family(scope, condition, slots: dict, constants: dict, upper: frozenset, dated: bool, label: str):
    """A family's decision function ``f(line, lv, rows, hits)``: appends (rule index, point, outcome) for
    each row that is violated or cannot be judged. ``slots``: Param name -> index in a row; ``constants``:
    Param name -> the value every row shares; ``upper``: Params holding has_diag prefixes upper-cased;
    ``dated``: rows carry (effective from, to) at 2 and 3. Here: generated Python (engine/codegen.py)."""
    from claimaudit.engine.codegen import family_function
    return family_function(scope, condition, slots, constants, upper, dated, label)


def decide_line(line: dict, lv: dict, exact: dict, prefix: dict, lengths: tuple, hits: list) -> None:
    """Run the families the line's code finds: ``exact`` by the whole code, ``prefix`` by its first n
    characters for each n in ``lengths`` (ascending); each maps to ((family, rows), ...)."""
    code = line.get("med_list_codg")
    if code is None:
        return
    for decide, rows in exact.get(code, ()):
        decide(line, lv, rows, hits)
    for n in lengths:
        if n > len(code):
            break
        for decide, rows in prefix.get(code[:n], ()):
            decide(line, lv, rows, hits)


def decide_lines(lines: list, current, exact: dict, prefix: dict, lengths: tuple) -> dict:
    """{index: (lv, hits)} of the lines whose code trips a family (only lines whose feedetl_sn is in
    ``current``, unless it is None); ``lv`` holds the line's derived values for rendering."""
    out = {}
    for i, line in enumerate(lines):
        if current is not None and line.get("feedetl_sn") not in current:
            continue
        lv, hits = {}, []
        decide_line(line, lv, exact, prefix, lengths, hits)
        if hits:
            out[i] = (lv, hits)
    return out


# ---- rendering ---------------------------------------------------------------------------------------------


def compile_renderer(rule, facts, location: str):
    """A line-level rule's render program: ``violation(line, lv, point)`` and ``insufficient(line, lv, point,
    unknown)`` give the finding, ``reason(line, lv, point)`` the reference's outcome on the knowledge row
    (False: not concerned, None: violation, else the Unknown). Here: generated Python (engine/render_source)."""
    from claimaudit.engine.render_source import SourceProgram
    return SourceProgram(rule, facts, location)
