#!/usr/bin/env python3
"""Generate a benchmark ruleset: knowledge tables for the drugs of the synthetic catalogue (the same
code space and seed as gen_claims.py) and ONE .rules file with one table-driven rule per line-level
rule type:

    rule type             table (knowledge/*.csv)   condition (claimaudit rule language)
    max daily dose        drug_max_dose             daily_dose > k.max_daily_dose      (quantity mg, g, µg)
    age range             drug_age_range            age_years < coalesce(k.min_age, 0) or age_years > coalesce(k.max_age, 200)
    sex restriction       drug_sex                  scope gend in {"1","2"}; gend != k.gend
    max units per day     drug_max_cnt              daily_cnt > k.max_daily_cnt
    indications           drug_indication           not has_diag(k.diag_prefixes) and hospital did not declare (hosp_appr_flag)

Every table is keyed on the 10-character generic-name code (match prefix) and carries point id,
original constraint text and source batch. --instances sets the total number of knowledge rows
(split about 30% dose, 26% units per day, 26% indications, 14% age, 4% sex; a type short of drugs
passes its share on). Smaller packs are subsets of larger ones (same seed and drugs).

    python benches/gen_knowledge.py --instances 50000 --drugs 20000 -o benches/out/ruleset_50k
    /tmp/venv1/bin/claimaudit check benches/out/ruleset_50k
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import (DEFAULT_SEED, FORMS, RULE_AGE, RULE_CNT, RULE_DOSE, RULE_IND, RULE_SEX,  # noqa: E402
                       Catalogue, build_catalogue)

TYPES = ("dose", "cnt", "ind", "age", "sex")
SHARES = {"dose": 0.30, "cnt": 0.26, "ind": 0.26, "age": 0.14, "sex": 0.04}
TABLE_FILES = {"dose": "drug_max_dose.csv", "cnt": "drug_max_cnt.csv", "ind": "drug_indication.csv",
               "age": "drug_age_range.csv", "sex": "drug_sex.csv"}
SOURCE = "基准测试知识库（合成数据，仅供性能测试） 第{}批"
MICRO = "µg"


def _num(v: float) -> str:
    return f"{v:g}"


def mass_text(mg: float, style: int) -> str:
    """A maximum daily dose as written in a knowledge table: g, mg, µg, or a bare number (= mg)."""
    if style == 0:
        return _num(mg)  # bare number: the column's default unit, mg
    if style == 3 and mg >= 100:
        return f"{_num(mg / 1000)}g"
    if mg >= 1000 and style != 2:
        return f"{_num(mg / 1000)}g"
    if mg < 1:
        return f"{_num(mg * 1000)}{MICRO}"
    return f"{_num(mg)}mg"


def plan_counts(total: int, available: dict) -> dict:
    want = {t: int(round(SHARES[t] * total)) for t in TYPES}
    want["dose"] += total - sum(want.values())
    counts = {t: min(want[t], available[t]) for t in TYPES}
    short = total - sum(counts.values())
    for t in ("dose", "cnt", "ind", "age", "sex"):  # pass a short type's share on
        take = min(short, available[t] - counts[t])
        counts[t] += take
        short -= take
    return counts


def knowledge_rows(cat: Catalogue, instances: int, seed: int) -> dict:
    available = {
        "dose": np.arange(cat.n),
        "cnt": np.arange(cat.n),
        "ind": np.array([d for d in range(cat.n) if cat.indications[d]]),
        "age": np.flatnonzero(~np.isnan(cat.min_age) | ~np.isnan(cat.max_age)),
        "sex": np.flatnonzero(cat.sex != 0),
    }
    counts = plan_counts(instances, {t: len(v) for t, v in available.items()})
    rows = {}
    for ti, t in enumerate(TYPES):
        rng = np.random.default_rng([seed, 3, ti])
        order = available[t][rng.permutation(len(available[t]))]  # fixed order: small packs are prefixes
        chosen = order[: counts[t]]
        style = rng.choice(4, size=len(order), p=[0.10, 0.60, 0.05, 0.25])[: counts[t]]
        out = []
        for i, d in enumerate(chosen):
            pid = f"{t.upper()}-{i + 1:06d}"
            base = {"point_id": pid, "code": cat.generic[d], "drug_name": cat.name[d]}
            src = SOURCE.format(1 + (i * 7) % 17)
            if t == "dose":
                q = mass_text(cat.max_daily_mg[d], int(style[i]))
                out.append({**base, "max_daily_dose": q, "text": f"成人每日最大剂量不超过{q if not q[-1].isdigit() else q + 'mg'}",
                            "source": src})
            elif t == "cnt":
                unit = FORMS[cat.form[d]][2]
                c = cat.max_daily_cnt[d]
                out.append({**base, "max_daily_cnt": _num(c), "unit": unit, "text": f"每日用量不超过{_num(c)}{unit}",
                            "source": src})
            elif t == "ind":
                prefixes = cat.indications[d]
                out.append({**base, "diag_prefixes": ";".join(prefixes),
                            "text": f"限诊断为{'、'.join(prefixes)}（ICD-10 医保版 2.0 类目）的患者使用", "source": src})
            elif t == "age":
                lo, hi = cat.min_age[d], cat.max_age[d]
                if not math.isnan(lo) and not math.isnan(hi):
                    text = f"限{_num(lo)}至{_num(hi)}岁患者使用"
                elif not math.isnan(lo):
                    text = f"{_num(lo)}岁以下患者禁用"
                else:
                    text = f"限{_num(hi)}岁及以下患者使用"
                out.append({**base, "min_age": "" if math.isnan(lo) else _num(lo),
                            "max_age": "" if math.isnan(hi) else _num(hi), "text": text, "source": src})
            else:
                g = str(int(cat.sex[d]))
                out.append({**base, "gend": g, "gend_name": "男性" if g == "1" else "女性",
                            "text": f"限{'男' if g == '1' else '女'}性使用", "source": src})
        rows[t] = out
    return rows


COLUMNS = {
    "dose": ["point_id", "code", "drug_name", "max_daily_dose", "text", "source"],
    "cnt": ["point_id", "code", "drug_name", "max_daily_cnt", "unit", "text", "source"],
    "ind": ["point_id", "code", "drug_name", "diag_prefixes", "text", "source"],
    "age": ["point_id", "code", "drug_name", "min_age", "max_age", "text", "source"],
    "sex": ["point_id", "code", "drug_name", "gend", "gend_name", "text", "source"],
}


def _example_code(code: str) -> str:
    return code + "A001010100001"  # 10-char generic code + 13 chars of form/spec/package/manufacturer


def rules_text(rows: dict, instances: int, seed: int, n_drugs: int) -> str:
    ex = {t: (rows[t][0] if rows[t] else None) for t in TYPES}
    out = [f"""# 基准测试规则包（合成）：{instances} 条知识点，{n_drugs} 个通用名药品，seed {seed}。
# Generated by benches/gen_knowledge.py; do not edit by hand. One table-driven rule per line-level
# rule type, each table keyed on the 10-character generic-name code (prefix match).

ruleset "基准测试规则包（合成）" {{
  version     "bench-1"
  authority   "claimaudit benchmark (synthetic knowledge, not official)"
  description "行级规则：超说明书日剂量、年龄范围、性别、每日最大数量、限适应症"
}}

table drug_max_dose from "knowledge/{TABLE_FILES['dose']}" {{
  key    code           text match prefix
  column point_id       text role id
  column drug_name      text
  column max_daily_dose quantity mg      # a bare number is mg; "2g", "300µg" convert
  column text           text role text
  column source         text role source
}}

table drug_age_range from "knowledge/{TABLE_FILES['age']}" {{
  key    code      text match prefix
  column point_id  text role id
  column drug_name text
  column min_age   number                # empty: no lower limit
  column max_age   number                # empty: no upper limit
  column text      text role text
  column source    text role source
}}

table drug_sex from "knowledge/{TABLE_FILES['sex']}" {{
  key    code      text match prefix
  column point_id  text role id
  column drug_name text
  column gend      text
  column gend_name text
  column text      text role text
  column source    text role source
}}

table drug_max_cnt from "knowledge/{TABLE_FILES['cnt']}" {{
  key    code          text match prefix
  column point_id      text role id
  column drug_name     text
  column max_daily_cnt number
  column unit          text
  column text          text role text
  column source        text role source
}}

table drug_indication from "knowledge/{TABLE_FILES['ind']}" {{
  key    code          text match prefix
  column point_id      text role id
  column drug_name     text
  column diag_prefixes list text
  column text          text role text
  column source        text role source
}}
"""]
    # ---- max daily dose
    out.append(f"""
rule {RULE_DOSE} "超说明书日剂量" {{
  class    "超说明书用量"
  result   可疑
  severity 警示
  lookup   k = drug_max_dose[med_list_codg]
  when     daily_dose > k.max_daily_dose
  message  "药品【{{hilist_name}}】{{k.text}}，本次日剂量{{daily_dose}}（{{sin_dos_dscr}} {{used_frqu_dscr}}）"
  amount   inscp_scp_amt * (daily_dose - k.max_daily_dose) / daily_dose
""")
    if ex["dose"]:
        r = ex["dose"]
        q = r["max_daily_dose"] if not r["max_daily_dose"][-1].isdigit() else r["max_daily_dose"] + "mg"
        code = _example_code(r["code"])
        out.append(f"""
  example "每次用到日最大剂量，每日2次" {{
    patient   {{ gend: "1", brdy: 1970-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 10, sin_dos_dscr: "{q}", used_frqu_dscr: "bid" }}
    expect flagged L1 amount 10
  }}
  example "每日1次，等于日最大剂量" {{
    patient   {{ gend: "1", brdy: 1970-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 10, sin_dos_dscr: "{q}", used_frqu_dscr: "每日1次" }}
    expect none
  }}
  example "按需服用：数据不足" {{
    patient   {{ gend: "1", brdy: 1970-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 10, sin_dos_dscr: "{q}", used_frqu_dscr: "prn" }}
    expect insufficient L1
  }}
""")
    out.append("}\n")
    # ---- age range
    out.append(f"""
rule {RULE_AGE} "超药品限定年龄" {{
  class    "项目限年龄"
  result   明确
  severity 拦截
  lookup   k = drug_age_range[med_list_codg]
  when     age_years < coalesce(k.min_age, 0) or age_years > coalesce(k.max_age, 200)
  message  "药品【{{hilist_name}}】{{k.text}}，患者就诊时{{age_years}}岁"
""")
    if ex["age"]:
        r = ex["age"]
        code = _example_code(r["code"])
        if r["min_age"]:
            bad, good = int(float(r["min_age"])) - 1, int(float(r["min_age"]))
        else:
            bad, good = int(float(r["max_age"])) + 1, int(float(r["max_age"]))
        out.append(f"""
  example "{bad}岁患者" {{
    patient   {{ gend: "1", brdy: {2025 - bad}-06-01 }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 1, pric: 18.8 }}
    expect flagged L1 amount 18.80
  }}
  example "生日当天{good}岁" {{
    patient   {{ gend: "1", brdy: {2025 - good}-06-01 }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 1, pric: 18.8 }}
    expect none
  }}
  example "出生日期缺失：数据不足" {{
    patient   {{ gend: "1" }}
    encounter {{ med_type: "11", begntime: 2025-06-01T09:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 1, pric: 18.8 }}
    expect insufficient L1
  }}
""")
    out.append("}\n")
    # ---- sex
    out.append(f"""
rule {RULE_SEX} "药品区分性别使用" {{
  class    "药品区分性别使用"
  result   明确
  severity 拦截
  lookup   k = drug_sex[med_list_codg]
  scope    gend in {{"1", "2"}}
  when     gend != k.gend
  message  "药品【{{hilist_name}}】{{k.text}}，患者性别与限定性别（{{k.gend_name}}）不符"
  amount   inscp_scp_amt
""")
    if ex["sex"]:
        r = ex["sex"]
        code = _example_code(r["code"])
        other = "2" if r["gend"] == "1" else "1"
        out.append(f"""
  example "性别不符" {{
    patient   {{ gend: "{other}", brdy: 1975-04-12 }}
    encounter {{ med_type: "11", begntime: 2025-03-01T09:30 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 36.5 }}
    expect flagged L1 amount 73.00
  }}
  example "性别相符" {{
    patient   {{ gend: "{r['gend']}", brdy: 1975-04-12 }}
    encounter {{ med_type: "11", begntime: 2025-03-01T09:30 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 36.5 }}
    expect none
  }}
  example "性别未说明：不适用" {{
    patient   {{ gend: "9", brdy: 1975-04-12 }}
    encounter {{ med_type: "11", begntime: 2025-03-01T09:30 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 36.5 }}
    expect none
  }}
  example "性别缺失：数据不足" {{
    patient   {{ brdy: 1975-04-12 }}
    encounter {{ med_type: "11", begntime: 2025-03-01T09:30 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 36.5 }}
    expect insufficient L1
  }}
""")
    out.append("}\n")
    # ---- units per day
    out.append(f"""
rule {RULE_CNT} "超每日最大用量" {{
  class    "最大开药量"
  result   可疑
  severity 提醒
  lookup   k = drug_max_cnt[med_list_codg]
  when     daily_cnt > k.max_daily_cnt
  message  "药品【{{hilist_name}}】{{k.text}}，本次开{{cnt}}{{k.unit}}、{{prd_days}}天，每日{{daily_cnt}}{{k.unit}}"
  amount   inscp_scp_amt * (cnt - k.max_daily_cnt * prd_days) / cnt
""")
    if ex["cnt"]:
        r = ex["cnt"]
        code = _example_code(r["code"])
        c = float(r["max_daily_cnt"])
        out.append(f"""
  example "5天超量" {{
    patient   {{ gend: "1", brdy: 1985-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-02-02T10:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: {_num((c + 1) * 5)}, pric: 1, prd_days: 5 }}
    expect flagged L1 amount 5
  }}
  example "5天足量" {{
    patient   {{ gend: "1", brdy: 1985-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-02-02T10:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: {_num(c * 5)}, pric: 1, prd_days: 5 }}
    expect none
  }}
  example "天数缺失：数据不足" {{
    patient   {{ gend: "1", brdy: 1985-01-01 }}
    encounter {{ med_type: "11", begntime: 2025-02-02T10:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: {_num(c * 5)}, pric: 1 }}
    expect insufficient L1
  }}
""")
    out.append("}\n")
    # ---- indications
    out.append(f"""
rule {RULE_IND} "药品限适应症" {{
  class    "药品限适应症"
  result   可疑
  severity 警示
  lookup   k = drug_indication[med_list_codg]
  # The hospital's declaration (hosp_appr_flag = 1) that the restriction is met is honoured.
  when     not has_diag(k.diag_prefixes) and coalesce(hosp_appr_flag, "0") != "1"
  message  "药品【{{hilist_name}}】{{k.text}}，本次就诊诊断不符合限定适应症"
""")
    if ex["ind"]:
        r = ex["ind"]
        code = _example_code(r["code"])
        p = r["diag_prefixes"].split(";")[0]
        out.append(f"""
  example "诊断不符" {{
    patient   {{ gend: "1", brdy: 1958-02-14 }}
    encounter {{ med_type: "21", begntime: 2025-03-10T08:00, dscg_maindiag_code: "Z00.000", diag_codes: ["Z00.000", "R99.x00"] }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 45 }}
    expect flagged L1 amount 90
  }}
  example "次要诊断符合（小写编码）" {{
    patient   {{ gend: "1", brdy: 1958-02-14 }}
    encounter {{ med_type: "21", begntime: 2025-03-10T08:00, dscg_maindiag_code: "Z00.000", diag_codes: ["{p.lower()}.900"] }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 45 }}
    expect none
  }}
  example "医院已审批" {{
    patient   {{ gend: "1", brdy: 1958-02-14 }}
    encounter {{ med_type: "21", begntime: 2025-03-10T08:00, dscg_maindiag_code: "Z00.000" }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 45, hosp_appr_flag: "1" }}
    expect none
  }}
  example "无诊断：数据不足" {{
    patient   {{ gend: "1", brdy: 1958-02-14 }}
    encounter {{ med_type: "41", begntime: 2025-03-10T08:00 }}
    line L1 {{ med_list_codg: "{code}", cnt: 2, pric: 45 }}
    expect insufficient L1
  }}
""")
    out.append("}\n")
    return "".join(out)


def generate(instances: int, n_drugs: int, seed: int, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    cat = build_catalogue(n_drugs, seed)
    rows = knowledge_rows(cat, instances, seed)
    kdir = out_dir / "knowledge"
    kdir.mkdir(parents=True, exist_ok=True)
    for t in TYPES:
        with (kdir / TABLE_FILES[t]).open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS[t])
            w.writeheader()
            w.writerows(rows[t])
    (out_dir / "bench.rules").write_text(rules_text(rows, instances, seed, n_drugs), encoding="utf-8")
    secs = time.perf_counter() - t0
    counts = {TABLE_FILES[t][:-4]: len(rows[t]) for t in TYPES}
    return {"script": "gen_knowledge", "rows": sum(counts.values()), "tables": counts, "drugs": n_drugs, "seed": seed,
            "seconds": round(secs, 2), "rows_per_s": round(sum(counts.values()) / secs), "out": str(out_dir)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=50_000,
                    help="knowledge rows in total, e.g. 1000, 10000, 50000 (default 50,000)")
    ap.add_argument("--drugs", type=int, default=20_000, help="generic drugs in the catalogue; must match gen_claims.py")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="must match gen_claims.py")
    ap.add_argument("-o", "--out", type=Path, help="ruleset directory (default benches/out/ruleset_<instances>)")
    a = ap.parse_args(argv)
    out = a.out or Path("benches/out") / f"ruleset_{a.instances}"
    print(json.dumps(generate(a.instances, a.drugs, a.seed, out), ensure_ascii=False))


if __name__ == "__main__":
    main()
