"""Generate a full-size national pack: rulesets/nhsa with its knowledge tables grown to N knowledge
points in all (default 250,000, the size of the 2025 national edition), across every class.

Each table keeps its seed rows (so the pack's examples still pass) and gains synthetic rows copied
from its seeds with fresh, well-formed national codes of the same kind and length in the key (and
partner) column and a unique point id. Tables get rows in proportion to a weight per table kind
(drug restriction tables are the largest in the real batches). Fixed seed: the same N gives the same
pack. Used by bench_compile.py (--rules) for the compile and load benchmarks.

Example:
  python benches/gen_nhsa_pack.py -o benches/out/nhsa_250k
  python benches/bench_compile.py --rules benches/out/nhsa_250k
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import string
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACK = HERE.parent / "rulesets" / "nhsa"
# relative share of the knowledge points; tables not named get weight 1
WEIGHTS = {"drug_": 6, "item_": 3, "consumable_": 2, "herb_": 1, "diag_": 1}
_TABLE_RE = re.compile(r'table\s+(\w+)\s+from\s+"([^"]+)"\s*\{(.*?)\n\}', re.S)


def tables_of(pack: Path) -> list[dict]:
    """Every knowledge table of the pack: name, CSV path, key and partner columns, id column."""
    out = []
    for rules in sorted(pack.rglob("*.rules")):
        for name, rel, body in _TABLE_RE.findall(rules.read_text(encoding="utf-8")):
            cols = {m.group(2): m.group(1) for m in re.finditer(r"^\s*(key|partner|column)\s+(\w+)(.*)$", body, re.M)}
            id_col = re.search(r"column\s+(\w+)\s+\w+(?:\s+\w+)?\s+role\s+id", body)
            out.append({"name": name, "path": (rules.parent / rel).resolve(),
                        "key": next(c for c, k in cols.items() if k == "key"),
                        "partner": next((c for c, k in cols.items() if k == "partner"), None),
                        "id": id_col.group(1) if id_col else None})
    return out


def fresh_code(template: str, rng: random.Random, taken: set) -> str:
    """A code shaped like ``template``: letters where it has letters, digits where it has digits
    (a short prefix such as the ICD-10 chapter "O" is first widened to a full code of its kind)."""
    if len(template) < 4:
        template = template[0] + "00.000" if template[0].isalpha() else template + "0000"
    for _ in range(1000):
        chars = []
        for i, c in enumerate(template):
            if i == 0 or c in ".x":  # keep the kind letter and the ICD-10 separators
                chars.append(c)
            elif c.isdigit():
                chars.append(rng.choice(string.digits))
            elif c.isalpha():
                chars.append(rng.choice(string.ascii_uppercase))
            else:
                chars.append(c)
        code = "".join(chars)
        if code not in taken:
            taken.add(code)
            return code
    raise RuntimeError(f"no fresh code left for the shape of {template}")


def grow(table: dict, extra: int, rng: random.Random) -> int:
    path = table["path"]
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header, seeds = reader.fieldnames, list(reader)
    if not seeds:
        return 0
    taken = {r[table["key"]] for r in seeds}
    rows = list(seeds)
    for i in range(extra):
        row = dict(seeds[i % len(seeds)])
        row[table["key"]] = fresh_code(row[table["key"]], rng, taken)
        partner = table["partner"]
        if partner and row.get(partner) and ";" not in row[partner]:
            row[partner] = fresh_code(row[partner], rng, taken)
        if table["id"]:
            row[table["id"]] = f"GEN-{table['name']}-{i + 1:06d}"
        rows.append(row)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True, help="directory to write the grown pack to (replaced)")
    ap.add_argument("--points", type=int, default=250_000, help="knowledge points in all (default 250,000)")
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(PACK, out, ignore=shutil.ignore_patterns("seeds"))
    tables = tables_of(out)
    weights = [next((w for p, w in WEIGHTS.items() if t["name"].startswith(p)), 1) for t in tables]
    seeds = sum(sum(1 for _ in t["path"].open(encoding="utf-8-sig")) - 1 for t in tables)
    budget = max(args.points - seeds, 0)
    rng = random.Random(args.seed)
    total = 0
    for t, w in zip(tables, weights):
        total += grow(t, budget * w // sum(weights), rng)
    print(json.dumps({"generator": "gen_nhsa_pack", "out": str(out), "tables": len(tables), "points": total},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
