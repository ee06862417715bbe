"""Reference, batch (both kernel backends) and inline give identical findings: on every example of
the demo pack, on its example claims, from a compiled bundle, and on random claim lines."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.connectors.claims import coerce_row, load_lines
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine import kernels
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.bundle import load_bundle, write_bundle
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
BACKENDS = kernels.available()

from claims_schema import SCHEMA  # noqa: E402


@pytest.fixture(scope="module")
def ruleset():
    rs = load_ruleset(PACK)
    assert rs.ok
    return rs


@pytest.fixture(scope="module")
def plan(ruleset):
    return build_plan(ruleset)


def keys(findings):
    return sorted(f.key() for f in findings)


def run_all(plan, lines: list[dict], backends=BACKENDS) -> dict:
    """Findings of every executor on the same typed lines."""
    rs = plan.ruleset
    out = {"reference": keys(ReferenceEngine(rs).run(lines))}
    table = pa.Table.from_pylist(lines, schema=SCHEMA)
    for b in backends:
        engine = BatchEngine(plan, kernels=b)
        hits, cols = engine.run_table(table)
        out[f"batch-{b}"] = keys(engine.findings(hits, cols))
    out["inline"] = keys(Screener(plan, stages=None).screen_lines(lines))
    return out


def assert_agree(results: dict):
    ref = results["reference"]
    for name, got in results.items():
        assert got == ref, f"{name} differs from the reference: {set(got) ^ set(ref)}"


def test_every_example_agrees(ruleset, plan):
    total = 0
    for rule in ruleset.rules:
        for example in rule.examples:
            lines = example_lines(example)
            results = run_all(plan, lines)
            assert_agree(results)
            total += len(results["reference"])
    assert total > 30  # the examples do produce findings


def test_example_claims_file_agrees(plan):
    path = PACK / "examples" / "claims.parquet"
    lines, quarantined = load_lines(path, plan.ruleset.rules)
    assert not quarantined
    results = run_all(plan, lines)
    assert_agree(results)
    assert sum(1 for k in results["reference"] if k[1] == "violation") == 13


def test_batch_reads_the_file_like_the_row_reader(plan):
    """Batch over the raw Arrow table (its own typing and quarantine) equals the reference over load_lines."""
    for name in ("claims.parquet", "claims.csv"):
        from claimaudit.connectors.claims import read_table
        table = read_table(PACK / "examples" / name)
        engine = BatchEngine(plan)
        hits, cols = engine.run_table(table)
        lines, _ = load_lines(PACK / "examples" / name, plan.ruleset.rules)
        assert keys(engine.findings(hits, cols)) == keys(ReferenceEngine(plan.ruleset).run(lines))


def test_bundle_gives_the_same_findings(plan, tmp_path):
    write_bundle(plan, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    lines, _ = load_lines(PACK / "examples" / "claims.parquet", plan.ruleset.rules)
    assert_agree(run_all(loaded, lines) | {"reference": keys(ReferenceEngine(plan.ruleset).run(lines))})
    assert loaded.explain() == plan.explain()


# ---- random lines ---------------------------------------------------------------------------------------

CODES = ["XG04CBF036A001010101234", "XG03DAH062B002020203456", "XJ01MAZ074A001010100478", "XJ01AAS010A001010100123",
         "XR07AAN134B002010104512", "XG03GAN185B002010100777", "XB05AAR023B002010100999", "XJ01DDC178B002010100321",
         "XN05AHA142A001010100555", "XB01ACA056B002020101763", "XA10BAE098A001010102233", "XJ01CAA040E001010100890",
         "003310010140000", "250104001000000", "0033100101400001", "XZ99ZZZ999A000000000000"]
DIAGS = ["I63.900", "I63.000", "I10.x00", "E11.900", "J06.900", "N40.x00", "O24.000", " i63.9 ", ""]
DOSES = ["500mg", "1000mg", "0.5g", "2g", "15mg", "2片", "每次0.5g", "abc", "250 µg", None]
FREQS = ["qd", "bid", "tid", "q8h", "每日3次", "2次/日", "prn", "st", None]


BIRTHS = [dt.date(1950, 3, 1), dt.date(1990, 6, 15), dt.date(2007, 6, 1), dt.date(2013, 6, 1), dt.date(2020, 2, 29),
          dt.date(2025, 1, 1), dt.date(2026, 5, 1)]
SERVICE = [dt.date(2023, 12, 31), dt.date(2024, 1, 1), dt.date(2025, 2, 10), dt.date(2025, 6, 1), dt.date(2026, 3, 1)]


def make_line(pick, i: int) -> dict:
    """One random claim line; ``pick(options)`` chooses (Hypothesis or random.Random). None = missing."""
    service = pick(SERVICE)
    line = {n: None for n in CLAIM_FIELDS}
    line.update({
        "feedetl_sn": f"L{i}", "mdtrt_id": f"M{pick([0, 1, 2])}", "psn_no": "P1", "hilist_name": "药品",
        "med_list_codg": pick(CODES),
        "gend": pick(["1", "2", "0", "9", None]),
        "brdy": pick(BIRTHS + [None]),
        "insutype": pick(["310", "390", "510", None]),
        "hosp_lv": pick(["01", "02", "05", "08", "11", None]),
        "med_type": pick(["11", "14", "21", "41", None]),
        "bilg_dept_codg": pick(["A03", "A15", "A15.01", "A07", None]),
        "fee_ocur_time": pick([dt.datetime.combine(service, dt.time(9, 30)), None]),
        "dscg_maindiag_code": pick(DIAGS + [None]),
        "diag_codes": pick([(), ("I10.x00",), ("E11.900", "I63.900"), (" j06.900 ", ""), None]),
        "cnt": pick([0.0, 1.0, 2.0, 4.0, 40.0, 60.0, None]),
        "pric": pick([0.5, 12.0, 15.0, 36.5, 3200.0, None]),
        "prd_days": pick([0.0, 3.0, 5.0, 7.0, 14.0, 30.0, 31.0, None]),
        "sin_dos_dscr": pick(DOSES),
        "used_frqu_dscr": pick(FREQS),
        "hosp_appr_flag": pick(["0", "1", None]),
    })
    if line["cnt"] is not None and line["pric"] is not None:
        line["det_item_fee_sumamt"] = line["cnt"] * line["pric"]
        line["inscp_scp_amt"] = pick([line["det_item_fee_sumamt"], None])
    return coerce_row(line)[0]  # the typed form every reader produces


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_lines_agree(plan, data):
    n = data.draw(st.integers(1, 12))
    lines = [make_line(lambda options: data.draw(st.sampled_from(options)), i) for i in range(n)]
    assert_agree(run_all(plan, lines))


def test_random_batch_of_many_lines_agrees(plan):
    import random
    rng = random.Random(2026)
    lines = [make_line(rng.choice, i) for i in range(3000)]
    results = run_all(plan, lines)
    assert_agree(results)
    outcomes = {(k[2], k[1]) for k in results["reference"]}
    assert len({code for code, o in outcomes if o == "violation"}) >= 10  # agreement is not vacuous
    assert any(o == "insufficient_data" for _, o in outcomes)


def test_results_do_not_depend_on_batch_size(plan):
    """The same table in one batch or in batches of 1,000 lines (and odd sizes) gives the same hits."""
    import random

    import numpy as np
    rng = random.Random(11)
    lines = [make_line(rng.choice, i) for i in range(2500)]
    lines[7]["med_list_codg"] = None  # a quarantined row in the middle of a batch
    table = pa.Table.from_pylist(lines, schema=SCHEMA)
    engine = BatchEngine(plan)
    whole, cols = engine.run_table(table)
    for size in (1000, 333):
        parts, batched = engine.run_table(table, batch_rows=size)
        for f in ("line", "rule", "point", "outcome"):
            assert np.array_equal(getattr(whole, f), getattr(parts, f)), (size, f)
        assert np.array_equal(np.isnan(whole.amount), np.isnan(parts.amount))
        assert np.array_equal(np.nan_to_num(whole.amount), np.nan_to_num(parts.amount))
        assert [q.to_record() for q in batched.quarantined()] == [q.to_record() for q in cols.quarantined()]
        assert keys(engine.findings(parts, batched)) == keys(engine.findings(whole, cols))
    assert len(whole) > 100 and cols.quarantined()[0].row == 8


def test_oddly_typed_parquet_columns_quarantine_before_any_rule(plan, tmp_path):
    """A date stored as an integer and a count stored as text: unreadable values quarantine their rows
    in every executor, and the rows are never audited (batch used to type such columns too late)."""
    import pyarrow.parquet as pq

    from claimaudit.connectors.claims import read_table
    t = pq.read_table(PACK / "examples" / "claims.parquet")
    cnt = [None if v is None else str(v) for v in t.column("cnt").to_pylist()]
    cnt[3] = "abc"
    brdy = [None if v is None else int(v.strftime("%Y%m%d")) for v in t.column("brdy").to_pylist()]
    brdy[5] = 20251399
    t = t.set_column(t.schema.get_field_index("cnt"), "cnt", pa.array(cnt))
    t = t.set_column(t.schema.get_field_index("brdy"), "brdy", pa.array(brdy, pa.int64()))
    path = tmp_path / "odd.parquet"
    pq.write_table(t, path)
    lines, quarantined = load_lines(path, plan.ruleset.rules)
    engine = BatchEngine(plan)
    hits, cols = engine.run_table(read_table(path))
    assert [(q.row, q.field) for q in cols.quarantined()] == [(q.row, q.field) for q in quarantined] == \
        [(4, "cnt"), (6, "brdy")]
    assert keys(engine.findings(hits, cols)) == keys(ReferenceEngine(plan.ruleset).run(lines))
    assert not set(hits.line.tolist()) & {3, 5}


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_rendering_gives_the_reference_findings_field_for_field(plan, backend):
    """Batch findings rendered by compiled render programs (rules with many hits) equal, in every field of
    the written record, those the reference renders for the same hits."""
    import random
    rng = random.Random(7)
    lines = [make_line(rng.choice, i) for i in range(1500)]
    table = pa.Table.from_pylist(lines, schema=SCHEMA)
    engine = BatchEngine(plan, kernels=backend)
    hits, cols = engine.run_table(table)
    engine.compile_renderers_at = 1  # every line-level rule through its render program
    compiled = sorted((f.to_record() for f in engine.findings(hits, cols)), key=lambda r: r["finding_id"])
    assert engine._renderers is not None and engine._renderers._by_rule
    engine.compile_renderers_at = len(hits) + 1  # none: the reference renders every hit
    rendered = sorted((f.to_record() for f in engine.findings(hits, cols)), key=lambda r: r["finding_id"])
    assert len(compiled) == len(hits) > 100
    assert {r["outcome"] for r in compiled} == {"violation", "insufficient_data"}
    assert compiled == rendered


def test_findings_table_is_the_records_table(plan):
    """The columnar findings table the CLI writes equals the table of the findings' records."""
    import random
    from claimaudit.engine.findings import FINDING_SCHEMA, findings_table
    rng = random.Random(5)
    lines = [make_line(rng.choice, i) for i in range(800)]
    engine = BatchEngine(plan)
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA))
    found = engine.findings(hits, cols)
    assert len(found) > 50
    want = pa.Table.from_pylist([f.to_record() for f in found], schema=FINDING_SCHEMA)
    assert findings_table(found).equals(want)
    assert findings_table([]).equals(pa.Table.from_pylist([], schema=FINDING_SCHEMA))


def test_findings_table_of_cross_line_findings():
    """Findings with involved lines, knowledge-less rules and profile marks, written a column at a time."""
    from claimaudit.engine.findings import FINDING_SCHEMA, findings_table
    history = ROOT / "rulesets" / "demo_history"
    rs = load_ruleset(history, profile=history / "profiles" / "示例市.toml")
    assert rs.ok
    found = []
    for rule in rs.rules:
        for ex in rule.examples:
            found.extend(ReferenceEngine(rs).run(example_lines(ex)))
    assert any(len(f.lines) > 1 for f in found) and any(f.knowledge.table is None for f in found)
    assert any(f.shadow or f.exemption for f in found)
    want = pa.Table.from_pylist([f.to_record() for f in found], schema=FINDING_SCHEMA)
    assert findings_table(found).equals(want)
