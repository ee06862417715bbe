"""The same drug knowledge written as individual rules and as tables must audit identically.

benches/rules_corpus.py writes a small corpus both ways: one rule per drug keyed on its code
prefix, with constants and ``basis`` inline (individual form), and four knowledge tables with four
table-driven rules (table form). The reference engine runs both over the same claim lines; the
findings must agree on line, outcome, message, amount and cited knowledge text and source. Rule
codes differ between the forms by construction and are left out.

Out of scope: lines without ``med_list_codg``. There the forms differ by design (an individual
rule cannot tell whether the line is its drug, so each one reports insufficient data, while a
table rule reports one insufficient-data finding for its lookup).
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import random
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benches import rules_corpus as rc  # noqa: E402

from claimaudit.dsl.ruleset import load_ruleset  # noqa: E402
from claimaudit.engine.findings import INSUFFICIENT, VIOLATION  # noqa: E402
from claimaudit.engine.reference import ReferenceEngine  # noqa: E402

N_DRUGS = 150
SEED = 20261122
LINES_SEED = 7
N_LINES = 400
DRUGS = rc.generate_drugs(N_DRUGS, SEED)


def comparable(f) -> tuple:
    kp = f.knowledge
    return (f.line_id, f.outcome, f.message, f.amount, kp.text if kp else None, kp.source if kp else None)


def findings(engine: ReferenceEngine, lines) -> collections.Counter:
    return collections.Counter(comparable(f) for f in engine.run(lines))


def assert_same(a: collections.Counter, b: collections.Counter) -> None:
    only_a, only_b = a - b, b - a
    if only_a or only_b:
        show = lambda c: "\n".join(f"    {k} ×{n}" for k, n in sorted(c.items(), key=str)[:10]) or "    none"
        pytest.fail(f"the forms disagree\n  only individual:\n{show(only_a)}\n  only table:\n{show(only_b)}")


def _load(path: Path):
    rs = load_ruleset(path)
    assert not rs.errors, rs.render_diagnostics()
    return rs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    ind_file = rc.write_individual(DRUGS, out / "individual")
    tab_file = rc.write_table(DRUGS, out / "table")
    individual, table = _load(ind_file.parent), _load(tab_file.parent)
    assert len(individual.rules) == N_DRUGS
    assert len(table.rules) == len(rc.SHAPES)
    assert sum(len(t) for t in table.tables.values()) == N_DRUGS
    return {"dir": out, "individual": ReferenceEngine(individual), "table": ReferenceEngine(table)}


def test_corpus_is_reproducible_and_national_looking():
    again = rc.generate_drugs(N_DRUGS, SEED)
    assert [(d.code, d.name, d.shape, d.text) for d in again] == [(d.code, d.name, d.shape, d.text) for d in DRUGS]
    assert len({d.code for d in DRUGS}) == N_DRUGS
    assert {d.shape for d in DRUGS} == set(rc.SHAPES)
    assert {d.dose_unit for d in DRUGS if d.shape == "dose"} == {"mg", "g", "µg"}
    for d in DRUGS[:20]:
        assert len(d.code) == 10 and d.code[0] == "X" and d.code[1].isalpha() and d.code[2:4].isdigit()
        full = d.full_code(random.Random(d.index))
        assert len(full) == 23 and full.startswith(d.code)


def test_same_findings_on_seeded_lines(corpus):
    lines = rc.sample_lines(DRUGS, N_LINES, seed=LINES_SEED)
    ind, tab = findings(corpus["individual"], lines), findings(corpus["table"], lines)
    assert_same(ind, tab)

    # The comparison has something to bite on: many violations of every shape, some insufficient
    # data, amounts computed, many distinct drugs hit.
    outcomes = collections.Counter(k[1] for k in ind.elements())
    assert outcomes[VIOLATION] >= 100, outcomes
    assert outcomes[INSUFFICIENT] >= 10, outcomes
    by_rule = collections.Counter(k[2].split("】")[0] for k in ind.elements() if k[1] == INSUFFICIENT)
    assert len(by_rule) >= 3, by_rule
    violated_texts = {k[4] for k in ind.elements() if k[1] == VIOLATION}
    for shape in rc.SHAPES:
        hit = [d for d in DRUGS if d.shape == shape and d.text in violated_texts]
        assert len(hit) >= 3, f"too few {shape} drugs violated: {len(hit)}"
    assert len(violated_texts) >= 40
    assert sum(1 for k in ind.elements() if k[1] == VIOLATION and k[3] is not None) >= 100
    assert any("日剂量" in k[2] and k[3] is not None for k in ind.elements() if k[1] == VIOLATION)


def test_comparison_notices_a_changed_knowledge_point(corpus, tmp_path):
    """Lower one violated age limit in a copy of the tables: the findings must no longer agree."""
    lines = rc.sample_lines(DRUGS, N_LINES, seed=LINES_SEED)
    ind = findings(corpus["individual"], lines)
    violated = collections.Counter(k[4] for k in ind.elements() if k[1] == VIOLATION)
    target = next(d for d in DRUGS if d.shape == "age" and violated[d.text])
    copy = tmp_path / "table"
    shutil.copytree(corpus["dir"] / "table", copy)
    csv_path = copy / "knowledge" / f"{rc.TABLE_OF['age']}.csv"
    with csv_path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["code"] == target.code:
            row["min_age"] = "0"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    changed = findings(ReferenceEngine(_load(copy)), lines)
    missing = ind - changed
    assert missing and all(k[4] == target.text for k in missing)
    assert not changed - ind


# ---- property: random lines ----------------------------------------------------------------------

_OTHER_CODES = ("003310010140000", "250104001000000", "ZA01AAB001A001010100001", "XZ99ZZZ999A001010100001", "")


@st.composite
def claim_lines(draw):
    out = []
    for i in range(draw(st.integers(1, 5))):
        drug = draw(st.sampled_from(DRUGS)) if draw(st.integers(0, 9)) else None
        if drug is not None and drug.shape == "age" and draw(st.booleans()):
            age = max(0, drug.min_age + draw(st.integers(-3, 3)))
        else:
            age = draw(st.none() | st.integers(0, 95))
        choice = {
            "gend": draw(st.sampled_from(("1", "2", "0", "9", None))),
            "age": age,
            "age_extra_days": draw(st.integers(0, 364)),
            "service": draw(st.dates(dt.date(2023, 1, 1), dt.date(2026, 12, 31))),
            "product": draw(st.integers(0, 2 ** 30)),
            "freq": draw(st.integers(0, len(rc._FREQUENCIES) - 1)),
            "dose_factor": draw(st.sampled_from(rc._DOSE_FACTORS) | st.floats(0.01, 10.0)),
            "dose_unit": draw(st.sampled_from(("mg", "g", "µg", "ug", "mcg"))),
            "dose_kind": draw(st.sampled_from(("ok", "ok", "ok", "count", "missing"))),
            "diag_kind": draw(st.sampled_from(("match", "match", "other", "none"))),
            "diag_pick": draw(st.integers(0, 99)),
            "appr": draw(st.integers(0, 4)) == 0,
            "cnt": draw(st.integers(1, 60)),
            "pric": draw(st.integers(1, 200_000)) / 100,
            "inscp_missing": draw(st.integers(0, 19)) == 0,
            "other_code": draw(st.sampled_from(_OTHER_CODES)),
        }
        line = rc.claim_line(drug, f"H{i}", choice)
        if drug is not None:  # the generic-name code alone, or a lower-cased code (matches nothing)
            variant = draw(st.sampled_from(("full", "full", "full", "generic", "lower")))
            if variant == "generic":
                line["med_list_codg"] = drug.code
            elif variant == "lower":
                line["med_list_codg"] = line["med_list_codg"].lower()
        out.append(line)
    return out


@settings(max_examples=30, deadline=None)
@given(lines=claim_lines())
def test_same_findings_on_random_lines(corpus, lines):
    assert_same(findings(corpus["individual"], lines), findings(corpus["table"], lines))
