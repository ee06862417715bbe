"""An official batch file in each national layout, imported with `claimaudit kb import` over the seed
table of the same name, feeds the national pack unchanged: a claim with an imported code is flagged,
and the finding cites the new batch and the batch's original restriction text."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main
from claimaudit.engine.findings import VIOLATION
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]
NHSA = ROOT / "rulesets" / "nhsa"
BATCH = "国家医保局两库2025版第7批"
LAYOUTS = {"drug_gend": "drug_restriction", "item_gend": "item_restriction", "item_dup_charge": "duplicate_charge",
           "item_frequency": "frequency_limit", "item_cycle": "cycle_limit", "item_course": "course_limit"}


def _as_excel(seed: Path, path: Path) -> Path:
    """The seed's rows as the official Excel file would carry them: a title row above the header."""
    with seed.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    wb = Workbook()
    ws = wb.active
    ws.title = "第7批"
    ws.append([f"{BATCH} 知识点"])
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


@pytest.mark.parametrize("table,kind", sorted(LAYOUTS.items()))
def test_imported_batch_feeds_the_pack_and_findings_cite_it(tmp_path, table, kind):
    pack = tmp_path / "nhsa"
    shutil.copytree(NHSA, pack)
    book = _as_excel(NHSA / "knowledge" / "seeds" / f"{table}.csv", tmp_path / f"{table}.xlsx")
    out = pack / "knowledge" / f"{table}.csv"
    result = CliRunner().invoke(main, ["kb", "import", "--kind", kind, str(book), "-o", str(out), "--batch", BATCH,
                                       "--effective-from", "2026-01-01"])
    assert result.exit_code == 0, result.output
    rs = load_ruleset(pack)
    assert rs.ok, rs.render_diagnostics()
    imported = {r["point_id"]: r for r in csv.DictReader(out.open(encoding="utf-8-sig", newline=""))}
    assert all(r["batch"] == BATCH for r in imported.values())
    rules = [r for r in rs.rules if r.lookup is not None and r.lookup.table == table]
    assert rules, f"no rule of the pack reads {table}"
    cited = 0
    for rule in rules:
        for ex in (e for e in rule.examples if e.expect_flagged):
            for f in ReferenceEngine(rs, rule_codes=[rule.code]).run(example_lines(ex)):
                if f.outcome != VIOLATION:
                    continue
                row = imported[f.knowledge.point_id]
                assert f.knowledge.source.startswith(BATCH) and f"{table}.xlsx" in f.knowledge.source
                assert f.knowledge.text == row["text"] and row["text"]
                cited += 1
    assert cited


def test_a_newer_batch_supersedes_the_table_by_date_of_service(tmp_path):
    """Batch 7 takes over on 2027-01-01: claims before that date are judged by the earlier version."""
    pack = tmp_path / "nhsa"
    shutil.copytree(NHSA, pack)
    seed = NHSA / "knowledge" / "seeds" / "drug_gend.csv"
    with seed.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    text_col = rows[0].index("药品说明")
    newer = [rows[0]] + [r[:text_col] + [r[text_col] + "（2027版修订）"] + r[text_col + 1:] for r in rows[1:]]
    path = tmp_path / "batch7.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(newer)
    out = pack / "knowledge" / "drug_gend.csv"
    result = CliRunner().invoke(main, ["kb", "import", "--kind", "drug_restriction", str(path), "-o", str(out),
                                       "--batch", BATCH, "--effective-from", "2027-01-01", "--supersede"])
    assert result.exit_code == 0, result.output
    assert "superseded the earlier version" in result.output
    rs = load_ruleset(pack)
    assert rs.ok, rs.render_diagnostics()
    rule = next(r for r in rs.rules if r.lookup is not None and r.lookup.table == "drug_gend")
    ex = next(e for e in rule.examples if e.expect_flagged)
    import datetime as dt

    def cited(day):
        lines = [dict(l, fee_ocur_time=dt.datetime.combine(day, dt.time(9))) for l in example_lines(ex)]
        return {(f.knowledge.source.split(" ")[0], f.knowledge.text) for f in
                ReferenceEngine(rs, rule_codes=[rule.code]).run(lines) if f.outcome == VIOLATION}
    before, after = cited(dt.date(2026, 6, 1)), cited(dt.date(2027, 6, 1))
    assert before and all(not src.startswith(BATCH) and "2027版" not in text for src, text in before)
    assert after and all(src.startswith(BATCH) and text.endswith("（2027版修订）") for src, text in after)
