"""Audits in partitions by patient (``claimaudit audit --partitions N``), one after another or in worker processes
(``--jobs N``), write the same findings and quarantine files as the audit of the whole file in memory: the same
rows, order and input row numbers."""
from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from claimaudit.connectors import partition as partition_mod
from claimaudit.connectors.partition import ClaimsSource, PartitionFiles, split_claims, text_hash64
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine import partitioned
from claimaudit.engine.cli import main
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
PACKS = {name: ROOT / "rulesets" / name for name in ("demo", "demo_history", "nhsa")}
_ARROW = {"text": pa.string(), "number": pa.float64(), "date": pa.date32(), "datetime": pa.timestamp("s"),
          "list": pa.list_(pa.string())}
SCHEMA = pa.schema([(n, _ARROW[f.type]) for n, f in CLAIM_FIELDS.items()])


# ---- claims: every example of a pack as its own patient, plus the dirt of real extracts ------------------

def example_claims(pack: Path) -> list[dict]:
    rs = load_ruleset(pack)
    assert rs.ok, rs.render_diagnostics()
    rows = []
    for r_i, rule in enumerate(rs.rules):
        for e_i, example in enumerate(rule.examples):
            tag = f"{r_i:03d}{e_i:02d}"
            for line in example_lines(example):
                line = dict(line, feedetl_sn=f"FD{tag}-{line['feedetl_sn']}", mdtrt_id=f"MD{tag}-{line['mdtrt_id']}",
                            psn_no=f"P{tag}", vali_flag="1")
                line["diag_codes"] = list(line["diag_codes"]) if line["diag_codes"] else None
                rows.append(line)
    return rows


def history_claims(rng: random.Random, n: int, patients: int) -> list[dict]:
    """Random patient histories over the demo_history codes (several encounters, prescriptions, days)."""
    codes = ["XB01ACA056B002020101763", "003107000010000", "003107000030000", "001101000020000", "250302001000000",
             "XC10AAA010A001010101234", "XC10AAR100A001010105678", "XJ01FAK067A001010101111", "T000100001",
             "XC10AAS060A001010102222", "T000200001", "T001200001", "C00201050010000000000000001",
             "330803014000000", "XJ01DHM085B001010101234", "XJ01DDA060B001010101111", "XA10BAE098A001010102233"]
    base = {name: None for name in CLAIM_FIELDS}
    encounters, out = {}, []
    for i in range(n):
        psn = f"P{rng.randrange(patients):03d}"
        enc = f"{psn}-E{rng.randrange(4)}"
        if enc not in encounters:
            start = dt.datetime(2025, 1, 1) + dt.timedelta(days=rng.randrange(90), hours=rng.randrange(12))
            encounters[enc] = dict(mdtrt_id=enc, begntime=start, med_type=rng.choice(["11", "21", "41"]),
                                   fixmedins_code=rng.choice(["H1", "H2"]))
        e = encounters[enc]
        code = rng.choice(codes)
        t = e["begntime"] + dt.timedelta(hours=rng.choice([0, 0, 3, 30, 200]))
        cnt = float(rng.choice([1, 2, 3]))
        pric = float(rng.choice([5, 60, 1200]))
        out.append(dict(base, psn_no=psn, gend="1", brdy=dt.date(1960, 1, 1), feedetl_sn=f"L{i:04d}", **e,
                        fee_ocur_time=t, med_list_codg=code, rxno=rng.choice(["R1", "R2", None]),
                        list_type="102" if code.startswith("T") else "101", cnt=cnt, pric=pric,
                        det_item_fee_sumamt=cnt * pric, inscp_scp_amt=cnt * pric,
                        prd_days=rng.choice([None, 7.0, 30.0]), vali_flag="1"))
    return out


def add_dirt(rows: list[dict], rng: random.Random) -> list[dict]:
    """Refunds (partial, full, of a missing line, under another patient, of a refund), invalid lines, lines
    without a patient (alone, or in a patient's encounter), lines without a time or a line id; shuffled."""
    rows = [dict(r) for r in rows]
    assert len(rows) >= 20
    originals = rng.sample(range(len(rows)), 8)
    extra = []

    def refund(i, share, **change):
        o = rows[i]
        r = dict(o, feedetl_sn=f"RF-{o['feedetl_sn']}-{len(extra)}", init_feedetl_sn=o["feedetl_sn"], **change)
        for c in ("cnt", "det_item_fee_sumamt", "inscp_scp_amt"):
            r[c] = None if o[c] is None else -o[c] * share
        extra.append(r)
        return r

    refund(originals[0], 1.0)  # full refund: the original is not audited
    refund(originals[1], 0.5)  # partial: audited with its net quantity
    refund(originals[2], 1.0, psn_no="P-OTHER-PATIENT")  # a refund filed under another patient
    r = refund(originals[3], 0.5, psn_no=None)  # a refund without a patient
    twice = dict(r, feedetl_sn=f"RF2-{len(extra)}", init_feedetl_sn=r["feedetl_sn"])  # a refund of the refund
    extra.append(twice)
    extra.append(dict(rows[originals[4]], feedetl_sn="RF-MISSING", init_feedetl_sn="NOT-IN-INPUT", cnt=-1.0))
    rows[originals[5]]["vali_flag"] = "0"
    for i in rng.sample(range(len(rows)), 6):  # without a patient: some in an encounter of a patient
        extra.append(dict(rows[i], feedetl_sn=f"NP-{i}", psn_no=rng.choice([None, "", "  "])))
    extra.append(dict(rows[originals[6]], feedetl_sn="NP-ALONE", psn_no=None, mdtrt_id="MD-ONLY-ORPHANS"))
    extra.append(dict(rows[originals[6]], feedetl_sn="NP-NOWHERE", psn_no=None, mdtrt_id=None))
    for i in rng.sample(range(len(rows)), 3):
        rows[i]["fee_ocur_time"] = None
    extra.append(dict(rows[originals[7]], feedetl_sn=None))  # no line id: quarantined
    extra.append(dict(rows[originals[7]], feedetl_sn=f" {rows[originals[7]]['feedetl_sn']}-B "))  # blanks
    out = rows + extra
    rng.shuffle(out)
    return out


def write_parquet(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=17)  # several row groups
    return path


def write_csv(rows: list[dict], path: Path, bad_cell: bool = True) -> Path:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    for name in (n for n, f in CLAIM_FIELDS.items() if f.type == "list"):
        joined = pa.array([";".join(v) if v else None for v in table[name].to_pylist()], pa.string())
        table = table.set_column(table.schema.get_field_index(name), name, joined)
    table = table.set_column(table.schema.get_field_index("cnt"), "cnt", pc_text(table["cnt"], bad_cell))
    pacsv.write_csv(table, path)
    return path


def pc_text(col, bad_cell: bool):
    values = [None if v is None else repr(v) for v in col.to_pylist()]
    if bad_cell:
        values[len(values) // 2] = "三"  # a quantity that does not read: quarantined
    return pa.array(values, pa.string())


# ---- running the CLI ------------------------------------------------------------------------------------

def audit(tmp_path: Path, pack: Path, claims: Path, name: str, *options) -> tuple[Path, Path, str]:
    out = tmp_path / f"{name}.parquet"
    q = tmp_path / f"{name}.quarantine.parquet"
    result = CliRunner().invoke(main, ["audit", "--rules", str(pack), str(claims), "--out", str(out),
                                       "--quarantine", str(q), *options])
    assert result.exit_code == 0, result.output
    return out, q, result.output


def assert_same_files(tmp_path, pack, claims, ks=(2, 3, 7)):
    """The partitioned audits write what the in-memory audit writes; returns (findings, quarantine) tables."""
    out, q, _ = audit(tmp_path, pack, claims, "whole", "--partitions", "1")
    want, want_q = pq.read_table(out), pq.read_table(q) if q.exists() else None
    for k in ks:
        got_out, got_q, text = audit(tmp_path, pack, claims, f"k{k}", "--partitions", str(k))
        assert f"{k} partitions by patient" in text
        got = pq.read_table(got_out)
        assert got.schema == want.schema
        assert got.equals(want), f"K={k}: findings differ ({got.num_rows} rows, {want.num_rows} in memory)"
        assert got_q.exists() == q.exists()
        if want_q is not None:
            assert pq.read_table(got_q).equals(want_q), f"K={k}: quarantine differs"
    return want, want_q


# ---- equality on the shipped packs ----------------------------------------------------------------------

@pytest.mark.parametrize("pack", ["demo", "demo_history", "nhsa"])
def test_examples_of_each_pack_with_dirt(tmp_path, pack):
    rows = add_dirt(example_claims(PACKS[pack]), random.Random(11))
    findings, quarantine = assert_same_files(tmp_path, PACKS[pack], write_parquet(rows, tmp_path / "c.parquet"))
    assert findings.num_rows > 10
    assert set(findings["outcome"].to_pylist()) == {"violation", "insufficient_data"}
    reasons = " ".join(quarantine["reason"].to_pylist())
    for expected in ("refunded in full", "refund netted into line", "cannot be netted", "vali_flag = 0", "line id"):
        assert expected in reasons
    rows_in_input = quarantine["row"].to_pylist()
    assert rows_in_input == sorted(rows_in_input) and max(rows_in_input) <= len(rows)


def test_the_shipped_demo_claims(tmp_path):
    for name in ("claims.parquet", "claims.csv"):
        findings, _ = assert_same_files(tmp_path, PACKS["demo"], PACKS["demo"] / "examples" / name)
        assert findings.num_rows == 39


def test_random_histories_in_parquet_and_csv(tmp_path):
    rows = add_dirt(history_claims(random.Random(3), 600, patients=40), random.Random(5))
    pack = PACKS["demo_history"]
    findings, quarantine = assert_same_files(tmp_path, pack, write_parquet(rows, tmp_path / "h.parquet"))
    assert len(set(findings["rule_code"].to_pylist())) >= 6
    no_patient = [r for r in findings["reason"].to_pylist() if r and "psn_no" in r]
    assert no_patient, "lines without a patient are insufficient data for patient-led rules"
    no_time = [r for r in findings["reason"].to_pylist() if r and "fee_ocur_time" in r]
    assert no_time, "lines without a time are insufficient data for cross-line rules"
    _, quarantine = assert_same_files(tmp_path, pack, write_csv(rows, tmp_path / "h.csv"), ks=(3,))
    assert "cnt" in quarantine["field"].to_pylist()  # the cell that does not read


def test_an_encounter_id_under_two_patients_merges_their_partitions(tmp_path):
    rows = history_claims(random.Random(8), 300, patients=30)
    donor = next(r for r in rows if r["psn_no"] != rows[0]["psn_no"])
    shared = [dict(r, mdtrt_id=donor["mdtrt_id"]) for r in rows if r["psn_no"] == rows[0]["psn_no"]]
    rows = [r for r in rows if r["psn_no"] != rows[0]["psn_no"]] + shared
    claims = write_parquet(rows, tmp_path / "s.parquet")
    source = ClaimsSource(claims)
    k = 7
    own = {partition_mod._slot(text_hash64(pa.array([p]))[0], k)[0] for p in (rows[-1]["psn_no"], donor["psn_no"])}
    assert len(own) == 2, "the test needs the two patients in different partitions"
    with split_claims(source, k, str(tmp_path), whole_encounters=True) as parts:
        assert parts.shared_encounters == [tuple(sorted(int(p) for p in own))]
    _, _, text = audit(tmp_path, PACKS["demo_history"], claims, "merged", "--partitions", str(k))
    assert "audited together" in text
    assert_same_files(tmp_path, PACKS["demo_history"], claims, ks=(k,))


# ---- the partitions themselves --------------------------------------------------------------------------

def test_every_patient_and_its_refunds_and_orphans_in_one_partition(tmp_path):
    rows = add_dirt(history_claims(random.Random(4), 400, patients=25), random.Random(9))
    claims = write_parquet(rows, tmp_path / "p.parquet")
    with split_claims(ClaimsSource(claims), 5, str(tmp_path)) as parts:
        directory = parts.directory
        seen, where = [], {}
        for p in range(5):
            table, input_rows = parts.read([p])
            if table is None:
                continue
            assert list(input_rows) == sorted(input_rows)
            seen += list(input_rows)
            for psn, sn, orig, enc in zip(*(table[c].to_pylist() for c in ("psn_no", "feedetl_sn", "init_feedetl_sn",
                                                                          "mdtrt_id"))):
                where.setdefault(("patient", (psn or "").strip() or None), set()).add(p)
                where.setdefault(("line", sn), set()).add(p)
                if orig:
                    where.setdefault(("refund", orig), set()).add(p)
                where.setdefault(("encounter", enc), set()).add(p)
        assert sorted(seen) == list(range(1, len(rows) + 1))  # every row once
        for (kind, value), ps in where.items():
            if kind == "patient" and value is not None and value != "P-OTHER-PATIENT":
                assert len(ps) == 1, kind
            if kind == "encounter" and value is not None:
                assert len(ps) == 1, "an encounter (with its lines without a patient) is in one partition"
            if kind == "refund" and ("line", value) in where:
                assert ps == where[("line", value)], "a refund is where its original is"
    assert not directory.exists()


def hash_by_hand(text: str) -> int:
    """text_hash64 written out with Python integers (the definition the partition files depend on)."""
    m = (1 << 64) - 1
    data = text.encode()
    h = sum(b * pow(0x100000001B3, i, 1 << 64) for i, b in enumerate(data)) & m
    h ^= (len(data) * 0x9E3779B97F4A7C15) & m
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & m
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & m
    return h ^ (h >> 31)


def test_patient_hash_is_stable():
    texts = ["43010000000000018620", "", None, "患者甲", "P" * 300]
    h, known = text_hash64(pa.array(texts))
    assert known.tolist() == [True, True, False, True, True]
    assert [int(v) for v, t in zip(h, texts) if t is not None] == [hash_by_hand(t) for t in texts if t is not None]
    assert int(h[0]) == 2950980654317733419  # the partition of a patient never changes between releases
    again, _ = text_hash64(pa.chunked_array([["x"], ["43010000000000018620"]]).cast(pa.dictionary(pa.int32(), pa.string())))
    assert again[1] == h[0]


def test_partition_files_are_removed_when_the_audit_fails(tmp_path, monkeypatch):
    claims = write_parquet(history_claims(random.Random(1), 100, patients=10), tmp_path / "f.parquet")
    made = []
    real = partitioned.split_claims

    def spy(*args, **kw):
        parts = real(*args, **kw)
        made.append(parts.directory)
        return parts

    def boom(*args, **kw):
        raise RuntimeError("engine failed")
    monkeypatch.setattr(partitioned, "split_claims", spy)
    monkeypatch.setattr(partitioned, "_audit_part", boom)
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out",
                                       str(tmp_path / "o.parquet"), "--partitions", "3", "--temp-dir", str(tmp_path)])
    assert isinstance(result.exception, RuntimeError)
    assert made and not made[0].exists()


# ---- choosing the number of partitions, and refusing ----------------------------------------------------

def test_automatic_choice_from_the_line_count(tmp_path):
    rows = history_claims(random.Random(2), 95, patients=9)
    claims = write_parquet(rows, tmp_path / "a.parquet")
    _, _, text = audit(tmp_path, PACKS["demo_history"], claims, "auto", "--partition-lines", "30")
    assert "4 partitions by patient" in text
    _, _, text = audit(tmp_path, PACKS["demo_history"], claims, "auto1")
    assert "partitions by patient" not in text
    assert partitioned.partitions_for(None, 10) == 1 and partitioned.partitions_for(10, 10) == 1
    assert partitioned.partitions_for(11, 10) == 2
    csv_rows = ClaimsSource(write_csv(rows, tmp_path / "a.csv", bad_cell=False)).row_count()
    assert 60 <= csv_rows <= 130  # an estimate from the line lengths


def test_a_scope_that_may_cross_patients_refuses_partitions(tmp_path, monkeypatch):
    class Rule:
        def __init__(self, scope):
            self.window = type("W", (), {"scope": scope})()
            self.rule = type("R", (), {"code": "X1"})()
    engine = type("E", (), {"cross_rules": [Rule("patient"), Rule("region")]})()
    assert "within region" in partitioned.scope_problem(engine)
    assert partitioned.scope_problem(type("E", (), {"cross_rules": [Rule("encounter"), Rule("day")]})()) is None
    claims = write_parquet(history_claims(random.Random(2), 40, patients=5), tmp_path / "r.parquet")
    monkeypatch.setattr(partitioned, "scope_problem", lambda engine: "rule X1 groups lines 'within region'")
    args = ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out", str(tmp_path / "o.parquet")]
    result = CliRunner().invoke(main, args + ["--partitions", "2"])
    assert result.exit_code == 2 and "error: --partitions 2: rule X1" in result.output
    result = CliRunner().invoke(main, args + ["--partition-lines", "10"])
    assert result.exit_code == 0 and "auditing the whole input in memory" in result.output
    result = CliRunner().invoke(main, args + ["--jobs", "2"])  # workers need partitions: asked for, so refused
    assert result.exit_code == 2 and "error: --jobs 2: rule X1" in result.output


@pytest.mark.parametrize("options, expected", [
    (["--partitions", "0"], "error: --partitions takes a whole number of at least 1, not '0'"),
    (["--partitions", "many"], "error: --partitions takes a whole number of at least 1, not 'many'"),
    (["--partition-lines", "-5"], "error: --partition-lines takes a whole number of at least 1"),
    (["--partitions", "2", "--executor", "reference"], "error: --partitions applies to --executor batch"),
    (["--partitions", "2", "--temp-dir", "/nonexistent/dir"], "error: /nonexistent/dir: cannot create a directory"),
    (["--jobs", "0"], "error: --jobs takes a whole number of at least 1, not '0'"),
    (["--jobs", "-2"], "error: --jobs takes a whole number of at least 1, not '-2'"),
    (["--jobs", "x"], "error: --jobs takes a whole number of at least 1, not 'x'"),
    (["--jobs", "2", "--executor", "reference"], "error: --jobs applies to --executor batch"),
    (["--jobs", "2", "--temp-dir", "/nonexistent/dir"], "error: /nonexistent/dir: cannot create a directory"),
])
def test_user_errors_are_one_line(tmp_path, options, expected):
    claims = write_parquet(history_claims(random.Random(2), 30, patients=5), tmp_path / "e.parquet")
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out",
                                       str(tmp_path / "o.parquet"), *options])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(expected) and len(result.output.strip().splitlines()) == 1
    assert "P00" not in result.output  # no patient id


def test_unreadable_input_and_full_disk_are_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    args = ["audit", "--rules", str(PACKS["demo_history"]), "--out", str(tmp_path / "o.parquet"), "--partitions", "3"]
    result = CliRunner().invoke(main, args[:3] + [str(bad)] + args[3:])
    assert result.exit_code == 2 and result.output.startswith(f"error: {bad}: cannot read")
    assert len(result.output.strip().splitlines()) == 1

    claims = write_parquet(history_claims(random.Random(2), 30, patients=5), tmp_path / "d.parquet")

    def full(self, *a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    result = CliRunner().invoke(main, args[:3] + [str(claims)] + args[3:] + ["--temp-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "cannot write partition files" in result.output and "No space left" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("claimaudit-partitions-*"))


# ---- worker processes (--jobs) --------------------------------------------------------------------------
# Spawned workers each pay an import and an engine build (about a second): few runs, 2–3 workers, small inputs.

def assert_workers_write_the_same(tmp_path, pack, claims, runs, *options):
    """Each (jobs, partitions or None) run in worker processes writes byte for byte the files one process writes
    with as many partitions, and the tables the in-memory audit writes; returns the in-memory findings."""
    out, q, _ = audit(tmp_path, pack, claims, "whole", "--partitions", "1", *options)
    want, want_q = pq.read_table(out), pq.read_table(q) if q.exists() else None
    for jobs, k in runs:
        parts = ["--partitions", str(k)] if k else []
        got_out, got_q, text = audit(tmp_path, pack, claims, f"j{jobs}", "--jobs", str(jobs), *parts, *options)
        assert f"{k or jobs} partitions by patient (psn_no), audited by {jobs} worker processes at once" in text
        one_out, one_q, text = audit(tmp_path, pack, claims, f"j{jobs}-one", "--partitions", str(k or jobs), *options)
        assert "audited one after another" in text
        assert got_out.read_bytes() == one_out.read_bytes(), f"--jobs {jobs}: findings file differs from --jobs 1"
        assert pq.read_table(got_out).equals(want), f"--jobs {jobs}: findings differ from the in-memory audit"
        assert got_q.exists() == one_q.exists() == q.exists()
        if want_q is not None:
            assert got_q.read_bytes() == one_q.read_bytes(), f"--jobs {jobs}: quarantine file differs from --jobs 1"
            assert pq.read_table(got_q).equals(want_q), f"--jobs {jobs}: quarantine differs from the in-memory audit"
    return want, want_q


@pytest.mark.parametrize("pack", ["demo", "demo_history", "nhsa"])
def test_workers_write_what_one_process_writes(tmp_path, pack):
    rows = add_dirt(example_claims(PACKS[pack]), random.Random(11))
    claims = write_parquet(rows, tmp_path / "c.parquet")
    findings, quarantine = assert_workers_write_the_same(tmp_path, PACKS[pack], claims, [(2, None), (3, 5)])
    assert findings.num_rows > 10
    reasons = " ".join(quarantine["reason"].to_pylist())
    assert "refunded in full" in reasons and "vali_flag = 0" in reasons


def test_workers_on_random_histories_in_parquet_and_csv(tmp_path):
    rows = add_dirt(history_claims(random.Random(3), 600, patients=40), random.Random(5))
    pack = PACKS["demo_history"]
    findings, _ = assert_workers_write_the_same(tmp_path, pack, write_parquet(rows, tmp_path / "h.parquet"), [(2, 4)])
    assert len(set(findings["rule_code"].to_pylist())) >= 6
    assert any(r and "psn_no" in r for r in findings["reason"].to_pylist())  # lines without a patient
    _, quarantine = assert_workers_write_the_same(tmp_path, pack, write_csv(rows, tmp_path / "h.csv"), [(3, None)])
    assert "cnt" in quarantine["field"].to_pylist()  # the CSV cell that does not read


def test_workers_with_a_profile_stages_and_a_bundle(tmp_path):
    """Workers build their engines from the same rules path or bundle, profile and stages as the parent."""
    rows = add_dirt(history_claims(random.Random(6), 300, patients=30), random.Random(7))
    claims = write_parquet(rows, tmp_path / "b.parquet")
    pack = PACKS["demo_history"]
    profile = ["--profile", str(next((pack / "profiles").glob("*.toml"))), "--stage", "事前"]  # not the default 事后
    findings, _ = assert_workers_write_the_same(tmp_path, pack, claims, [(2, None)], *profile)
    assert any(findings["shadow"].to_pylist()), "the profile's shadow rule marks findings in the workers too"
    bundle = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["compile", str(pack), "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    assert_workers_write_the_same(tmp_path, bundle, claims, [(2, 3)])


def test_workers_audit_partitions_sharing_an_encounter_together(tmp_path):
    rows = history_claims(random.Random(8), 300, patients=30)
    donor = next(r for r in rows if r["psn_no"] != rows[0]["psn_no"])
    shared = [dict(r, mdtrt_id=donor["mdtrt_id"]) for r in rows if r["psn_no"] == rows[0]["psn_no"]]
    claims = write_parquet([r for r in rows if r["psn_no"] != rows[0]["psn_no"]] + shared, tmp_path / "s.parquet")
    _, _, text = audit(tmp_path, PACKS["demo_history"], claims, "merged", "--partitions", "7", "--jobs", "2")
    assert "audited together" in text  # the same seed as the test above: two partitions share an encounter
    assert_workers_write_the_same(tmp_path, PACKS["demo_history"], claims, [(3, 7)])


def test_the_console_says_how_many_partitions_and_workers(tmp_path):
    rows = history_claims(random.Random(2), 95, patients=9)
    pack = PACKS["demo_history"]
    claims = write_parquet(rows, tmp_path / "w.parquet")
    _, _, text = audit(tmp_path, pack, claims, "auto", "--jobs", "2", "--partition-lines", "30")
    assert "4 partitions by patient (psn_no), audited by 2 worker processes at once" in text  # max(4, 2)
    _, _, text = audit(tmp_path, pack, claims, "fewer", "--partitions", "2", "--jobs", "3")
    assert "2 partitions by patient (psn_no), audited by 2 worker processes at once" in text  # one per group
    assert "P0" not in text  # no patient id
    _, _, text = audit(tmp_path, pack, claims, "memory", "--partitions", "1", "--jobs", "2")
    assert "--jobs 2 is not used" in text and "partitions by patient" not in text
    one_patient = write_parquet([dict(r, psn_no="P001") for r in rows], tmp_path / "one.parquet")
    _, _, text = audit(tmp_path, pack, one_patient, "one", "--jobs", "2")  # one partition with lines
    assert "2 partitions by patient (psn_no), audited one after another" in text


def test_a_worker_that_cannot_read_its_partition_is_one_line(tmp_path, monkeypatch):
    claims = write_parquet(history_claims(random.Random(2), 60, patients=8), tmp_path / "g.parquet")

    def gone(self):  # the workers look for the partition files where there are none
        return PartitionFiles(self.directory / "gone", tuple(self.rows), ())
    monkeypatch.setattr(partition_mod.Partitions, "files", gone)
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out",
                                       str(tmp_path / "o.parquet"), "--jobs", "2", "--temp-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "cannot read back" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "P0" not in result.output
    assert not list(tmp_path.glob("claimaudit-partitions-*"))


def test_a_worker_that_cannot_load_the_rules_is_one_line(tmp_path, monkeypatch):
    claims = write_parquet(history_claims(random.Random(2), 60, patients=8), tmp_path / "g.parquet")
    bad = tmp_path / "changed.rules"
    bad.write_text("rule X1 this does not parse\n", encoding="utf-8")
    real = partitioned.audit_partitioned

    def changed(engine, source, k, temp_dir, jobs, recipe):  # the rules change after the parent loaded them
        return real(engine, source, k, temp_dir, jobs, replace(recipe, rules_path=str(bad)))
    monkeypatch.setattr(partitioned, "audit_partitioned", changed)
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out",
                                       str(tmp_path / "o.parquet"), "--jobs", "2"])
    assert result.exit_code == 1, result.output  # errors in rules: the status ``check`` gives
    assert result.output.strip() == f"1 error(s) in {bad}; fix them first (claimaudit check {bad})"


class _EndsTheWorker:
    """Unpickled in a worker process as it starts, it ends that process: a worker killed (out of memory, say)."""

    def __reduce__(self):
        return os._exit, (9,)


def test_a_worker_killed_is_one_line(tmp_path, monkeypatch):
    claims = write_parquet(history_claims(random.Random(2), 60, patients=8), tmp_path / "g.parquet")
    real = partitioned.audit_partitioned

    def killed(engine, source, k, temp_dir, jobs, recipe):
        return real(engine, source, k, temp_dir, jobs, replace(recipe, profile=_EndsTheWorker()))
    monkeypatch.setattr(partitioned, "audit_partitioned", killed)
    result = CliRunner().invoke(main, ["audit", "--rules", str(PACKS["demo_history"]), str(claims), "--out",
                                       str(tmp_path / "o.parquet"), "--jobs", "2", "--temp-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: a worker process ended before returning its findings")
    assert "try fewer --jobs" in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("claimaudit-partitions-*"))


def test_workers_use_the_kernels_the_environment_selects(tmp_path, monkeypatch):
    from claimaudit.engine.batch import BatchEngine
    from claimaudit.engine.plan import build_plan
    claims = write_parquet(history_claims(random.Random(2), 60, patients=8), tmp_path / "k.parquet")
    engine = BatchEngine(build_plan(load_ruleset(PACKS["demo_history"])))
    source = ClaimsSource(claims, select=engine.columns_to_read)
    recipe = partitioned.EngineRecipe(str(PACKS["demo_history"]))
    got = partitioned.audit_partitioned(engine, source, 2, str(tmp_path), jobs=2, recipe=recipe)
    assert got.workers == 2 and got.findings.num_rows > 0
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "no-such-kernels")  # spawned workers inherit it
    with pytest.raises(ValueError, match="no-such-kernels"):
        partitioned.audit_partitioned(engine, source, 2, str(tmp_path), jobs=2, recipe=recipe)
