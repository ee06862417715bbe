"""The synthetic drug catalogue shared by the benchmark generators.

``gen_claims.py`` and ``gen_knowledge.py`` both call :func:`build_catalogue` with the same
``(n_drugs, seed)``, so the knowledge tables are keyed on exactly the generic codes the claims use.
The catalogue holds the *label facts* of each drug (strength, usual dose and frequency, maximum
daily dose, maximum units per day, age and sex restrictions, indicated ICD-10 categories); the
claims generator prescribes mostly within them (with a realistic share of violations) and the
knowledge generator publishes a subset of them as knowledge points.

Everything here is synthetic: codes look like national codes (``X`` + ATC-like level 4 + letter +
3 digits = the 10-character generic code, then 13 characters of dosage form / spec / package /
manufacturer) but are not catalogue entries. Diagnosis codes are real ICD-10 医保版 2.0 codes.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20261122
HERE = Path(__file__).resolve().parent
SHARED_ICD = HERE.parent.parent / "shared" / "data" / "icd10_yibao_v2" / "icd10_yibao_v2_diagnoses.csv"
SAMPLE_ICD = HERE / "icd10_sample.csv"

# Rule codes of the benchmark pack (gen_knowledge.py writes them, duckdb_baseline.py queries them).
RULE_DOSE = "BENCH_MAX_DAILY_DOSE"
RULE_AGE = "BENCH_AGE_RANGE"
RULE_SEX = "BENCH_SEX"
RULE_CNT = "BENCH_MAX_DAILY_CNT"
RULE_IND = "BENCH_INDICATION"
RULE_CODES = (RULE_DOSE, RULE_AGE, RULE_SEX, RULE_CNT, RULE_IND)

# Therapeutic areas: ATC level-2 prefixes of their drugs, ICD-10 categories of their diagnoses,
# ordering department (national 科室代码), name stems.
#            name        ATC                                       ICD-10 categories                                       dept      stems
GROUPS = [
    ("general", ["A11", "A12", "B05", "V06"], [], "A02", ["维生素", "葡萄糖", "氯化钠", "钙", "氯化钾"]),
    ("cardio", ["C01", "C03", "C07", "C08", "C09", "C10"], ["I10", "I11", "I20", "I21", "I25", "I48", "I50", "E78", "I70"],
     "A03.04", ["沙坦", "地平", "洛尔", "普利", "他汀", "噻嗪"]),
    ("endocrine", ["A10", "H03", "H02"], ["E11", "E10", "E14", "E03", "E05"], "A03.07", ["格列", "列汀", "胰岛素", "甲状腺素", "松"]),
    ("respiratory", ["J01", "R05", "R03", "R06"], ["J06", "J18", "J20", "J44", "J45", "J02", "J03", "R50", "N39"],
     "A03.01", ["西林", "头孢", "霉素", "沙星", "特罗", "索奈德", "司特"]),
    ("digestive", ["A02", "A03", "A06", "A07"], ["K21", "K25", "K29", "K30", "K59", "K52", "A09"], "A03.02",
     ["拉唑", "替丁", "必利", "双歧杆菌", "蒙脱石"]),
    ("neuro", ["B01", "N02", "N03", "N07"], ["I63", "I67", "G40", "G43", "G45", "R51"], "A03.03",
     ["格雷", "西坦", "卡因", "巴林", "曲坦", "平"]),
    ("psych", ["N05", "N06"], ["F20", "F31", "F32", "F41", "G47"], "A15", ["氮平", "西汀", "唑仑", "哌酮", "普仑"]),
    ("musculo", ["M01", "M04", "M05", "M03"], ["M06", "M10", "M17", "M54", "M81", "M79"], "A04.06",
     ["洛芬", "昔布", "膦酸", "秋水仙碱", "美辛"]),
    ("urology", ["G04", "L02"], ["N40", "N41", "C61"], "A04.04", ["雄胺", "唑嗪", "罗辛", "鲁胺"]),
    ("gynecology", ["G02", "G03"], ["N92", "N95", "O20", "O21", "N97", "E28"], "A05", ["孕酮", "雌醇", "米索", "促卵泡素"]),
    ("oncology", ["L01", "L04"], ["C34", "C16", "C18", "C50", "C22"], "A19", ["替尼", "他滨", "铂", "紫杉醇", "单抗"]),
    ("dermatology", ["D01", "D06", "D07"], ["L20", "L23", "L30", "L40", "B35"], "A13", ["康唑", "米松", "莫司", "维A酸"]),
    ("eye_ent", ["S01", "R01"], ["H10", "H16", "H40", "J30", "J32", "H66"], "A10", ["洛尔滴眼", "沙星滴眼", "羟甲唑啉", "氮斯汀"]),
    ("blood", ["B03", "B02"], ["D50", "D64", "D69", "N18"], "A03.05", ["铁", "促红素", "叶酸", "氨甲环酸"]),
]
GROUP_NAMES = [g[0] for g in GROUPS]
# share of the catalogue in each group
GROUP_SHARE = np.array([0.08, 0.13, 0.07, 0.13, 0.08, 0.08, 0.07, 0.07, 0.05, 0.05, 0.07, 0.05, 0.04, 0.03])
SYLLABLES = list("阿贝奥坎厄氯美普瑞替依维佐缬福拉索多利米尼卡帕泮诺西达格")

# dosage forms: (code letter, name suffix, count unit, share, price base per unit)
FORMS = [("A", "片", "片", 0.45, 0.6), ("E", "胶囊", "粒", 0.20, 0.9), ("B", "注射液", "支", 0.25, 12.0),
         ("C", "颗粒", "袋", 0.10, 1.8)]
STRENGTHS_MG = np.array([0.1, 0.25, 0.5, 1, 2, 2.5, 4, 5, 10, 12.5, 20, 25, 40, 50, 75, 80, 100, 125, 150, 200, 250,
                         300, 400, 500, 600, 1000])
STRENGTH_P = np.array([1, 2, 2, 3, 2, 3, 2, 6, 8, 2, 7, 6, 5, 6, 2, 3, 8, 3, 3, 6, 6, 3, 2, 6, 2, 2], dtype=float)


@dataclass
class Catalogue:
    n: int                       # generic drugs
    generic: np.ndarray          # object array of 10-char generic codes
    name: np.ndarray             # object array, generic names
    group: np.ndarray            # int group index
    form: np.ndarray             # int index into FORMS
    popularity: np.ndarray       # float weights (Zipf-like by a random rank)
    strength_mg: np.ndarray      # per unit (tablet, capsule, vial …)
    units_per_dose: np.ndarray   # usual units per administration (1 or 2)
    freq: np.ndarray             # usual administrations per day (1..4)
    max_daily_mg: np.ndarray     # label maximum daily dose
    max_daily_cnt: np.ndarray    # maximum units per day
    min_age: np.ndarray          # float, nan = none
    max_age: np.ndarray          # float, nan = none
    sex: np.ndarray              # int 0 none, 1 male only, 2 female only
    indications: list            # per drug: tuple of ICD-10 categories ("" for general drugs)
    prod_start: np.ndarray       # first product index of each drug
    prod_count: np.ndarray
    prod_code: np.ndarray        # object array of 23-char national codes
    prod_name: np.ndarray
    prod_price: np.ndarray       # per unit, yuan

    @property
    def n_products(self) -> int:
        return len(self.prod_code)


def _unique_codes(rng, n, group) -> np.ndarray:
    """n distinct generic codes 'X' + ATC level 4 (5 chars) + letter + 3 digits, ATC from the group."""
    letters = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    out = np.empty(n, dtype=object)
    seen: set[str] = set()
    for i in range(n):
        atc2 = GROUPS[group[i]][1]
        while True:
            a = atc2[rng.integers(len(atc2))]
            code = (f"X{a}{letters[rng.integers(0, 5)]}{letters[rng.integers(0, 8)]}"
                    f"{letters[rng.integers(len(letters))]}{rng.integers(0, 1000):03d}")
            if code not in seen:
                seen.add(code)
                out[i] = code
                break
    return out


def build_catalogue(n_drugs: int, seed: int = DEFAULT_SEED) -> Catalogue:
    rng = np.random.default_rng([seed, 1])
    n = n_drugs
    group = rng.choice(len(GROUPS), size=n, p=GROUP_SHARE / GROUP_SHARE.sum())
    group[: len(GROUPS)] = np.arange(len(GROUPS))  # every group has a drug, even for tiny catalogues
    generic = _unique_codes(rng, n, group)
    s1 = rng.integers(len(SYLLABLES), size=n)
    s2 = rng.integers(len(SYLLABLES), size=n)
    form = rng.choice(len(FORMS), size=n, p=[f[3] for f in FORMS])
    name = np.empty(n, dtype=object)
    for i in range(n):
        stems = GROUPS[group[i]][4]
        name[i] = SYLLABLES[s1[i]] + SYLLABLES[s2[i]] + stems[(s1[i] + s2[i]) % len(stems)]
    rank = rng.permutation(n)
    popularity = 1.0 / (rank + 1.0) ** 1.05

    strength = rng.choice(STRENGTHS_MG, size=n, p=STRENGTH_P / STRENGTH_P.sum())
    units = rng.choice([1.0, 2.0], size=n, p=[0.72, 0.28])
    freq = rng.choice([1.0, 2.0, 3.0, 4.0], size=n, p=[0.35, 0.30, 0.30, 0.05])
    factor = rng.choice([1.0, 1.5, 2.0, 3.0], size=n, p=[0.15, 0.25, 0.40, 0.20])
    max_daily_mg = strength * units * freq * factor
    cnt_factor = rng.choice([1.0, 1.5, 2.0], size=n, p=[0.20, 0.30, 0.50])
    max_daily_cnt = np.ceil(units * freq * cnt_factor)

    general = group == 0
    min_age = np.where(rng.random(n) < 0.30, rng.choice([18, 12, 6, 2, 16], size=n, p=[0.5, 0.2, 0.1, 0.1, 0.1]), np.nan)
    max_age = np.where(rng.random(n) < 0.08, rng.choice([14, 18, 65, 75], size=n, p=[0.3, 0.2, 0.25, 0.25]), np.nan)
    clash = ~np.isnan(min_age) & ~np.isnan(max_age) & (max_age < min_age + 10)
    max_age[clash] = np.nan
    min_age[general] = np.nan
    max_age[general] = np.nan

    sex = np.zeros(n, dtype=np.int8)
    u = rng.random(n)
    sex[(group == GROUP_NAMES.index("urology")) & (u < 0.7)] = 1
    sex[(group == GROUP_NAMES.index("gynecology")) & (u < 0.7)] = 2
    onc = group == GROUP_NAMES.index("oncology")
    sex[onc & (u < 0.1)] = 1
    sex[onc & (u > 0.9)] = 2

    indications = []
    k = rng.choice([1, 2, 3], size=n, p=[0.45, 0.35, 0.20])
    for i in range(n):
        cats = GROUPS[group[i]][2]
        if not cats:
            indications.append(())
            continue
        pick = rng.choice(len(cats), size=min(k[i], len(cats)), replace=False)
        indications.append(tuple(sorted(cats[j] for j in pick)))
    for g, (gname, _, cats, _, _) in enumerate(GROUPS):  # every category has at least one drug
        members = np.flatnonzero(group == g)
        for j, c in enumerate(cats):
            if members.size and not any(c in indications[m] for m in members):
                m = members[j % members.size]
                indications[m] = tuple(sorted(set(indications[m]) | {c}))

    prod_count = np.minimum(rng.geometric(0.5, size=n), 4)
    prod_start = np.concatenate([[0], np.cumsum(prod_count)[:-1]])
    n_prod = int(prod_count.sum())
    prod_drug = np.repeat(np.arange(n), prod_count)
    digits = rng.integers(0, 10, size=(n_prod, 12))
    prod_code = np.empty(n_prod, dtype=object)
    prod_name = np.empty(n_prod, dtype=object)
    price_noise = np.exp(rng.normal(0, 0.8, size=n_prod))
    base_price = np.array([f[4] for f in FORMS])[form[prod_drug]]
    prod_price = np.maximum(0.01, np.round(base_price * price_noise * (1 + strength[prod_drug] / 500), 2))
    tails = ["".join(map(str, row)) for row in digits.tolist()]
    for p in range(n_prod):
        d = prod_drug[p]
        f = FORMS[form[d]]
        prod_code[p] = generic[d] + f[0] + tails[p]
        prod_name[p] = name[d] + f[1]
    return Catalogue(n, generic, name, group, form, popularity, strength, units, freq, max_daily_mg, max_daily_cnt,
                     min_age, max_age, sex, indications, prod_start, prod_count, prod_code, prod_name, prod_price)


# ---- ICD-10 医保版 2.0 codes -----------------------------------------------------------------


def all_categories() -> list[str]:
    return sorted({c for g in GROUPS for c in g[2]})


def _plain(code: str) -> bool:
    return "+" not in code and "*" not in code and len(code) >= 7 and code[3] == "."


def load_icd(path: str | os.PathLike | None = None) -> tuple[dict[str, list[str]], str]:
    """ICD-10 codes of every category the groups use: the shared national list when present,
    else the sample committed next to this file. Returns ({category: [codes]}, source path)."""
    if path is None:
        path = SHARED_ICD if SHARED_ICD.exists() else SAMPLE_ICD
    path = Path(path)
    cats = set(all_categories())
    by_cat: dict[str, list[str]] = {c: [] for c in sorted(cats)}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            code = row["diag_code"].strip()
            if code[:3] in cats and _plain(code):
                by_cat[code[:3]].append(code)
    missing = [c for c, v in by_cat.items() if not v]
    if missing:
        raise SystemExit(f"{path}: no codes for categories {', '.join(missing)}")
    return by_cat, str(path)


def write_icd_sample(out: Path = SAMPLE_ICD, per_category: int = 4) -> int:
    """Take a few real codes per category from the shared list into the project (run once)."""
    by_cat, _ = load_icd(SHARED_ICD)
    names = {}
    with SHARED_ICD.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            names[row["diag_code"].strip()] = row["diag_name"].strip()
    rows = []
    for c, codes in by_cat.items():
        base = [x for x in codes if len(x) == 7] or codes  # prefer codes without extensions (x001 …)
        rest = [x for x in codes if x not in base]
        for code in (base + rest)[:per_category]:
            rows.append((code, names[code]))
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["diag_code", "diag_name"])
        w.writerows(rows)
    return len(rows)
