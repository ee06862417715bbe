#!/usr/bin/env python3
"""Generate the ruleset of the cross-line (history) batch benchmark: one rule file and four knowledge
tables whose keys are codes that actually occur in a claims file, so the rules fire at realistic rates.

    python benches/gen_claims.py --history --lines 10000000 -o benches/out/hist_claims_10m.parquet
    python benches/gen_history.py --claims benches/out/hist_claims_10m.parquet -o benches/out/ruleset_history

Tables (knowledge/*.csv):
  drug_interaction  2,000 drug pairs (A, B), keys the 10-character generic-name prefixes of drug codes of
                    the claims (prefix match), A != B, neither a prefix of the other, no pair twice in either
                    order; half the pairs within one ATC therapeutic subgroup, half across; drugs drawn by
                    sqrt(lines) among all generics of the claims (common drugs have more interactions)
  item_dup_charge   900 ordered service-item pairs (main A, sub B), 15-digit codes of the claims (exact
                    match), every item equally likely
  cycle_limit       100 service items (15-digit codes, max_times 1-4) and 300 drugs (10-character prefixes
                    of the 4,000 commonest generics, max_times 4-12) per period_days = 30 (prefix match)
  course_limit      300 drugs (10-character prefixes of the 4,000 commonest generics) with max_days 7-90,
                    the longest course paid (prefix match)

Rules (bench_history.rules), each with examples that `claimaudit test` runs:
  HIST_DDI      pair p = drug_interaction[med_list_codg] within day unordered        药品相互作用
  HIST_ITEM_DUP pair p = item_dup_charge[med_list_codg] within day                   项目重复收费
  HIST_CYCLE    lookup k = cycle_limit[...], window w = same k within patient rolling 30 days,
                when w.count > k.max_times                                          周期超频次
  HIST_COURSE   lookup k = course_limit[...], window w = same k within patient,
                when w.span_days > k.max_days                                       药品限支付疗程

The output depends only on the claims file's code frequencies and the options (fixed seed).
The last line on stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_SEED = 20261122
RULE_DDI, RULE_ITEM_DUP, RULE_CYCLE, RULE_COURSE = "HIST_DDI", "HIST_ITEM_DUP", "HIST_CYCLE", "HIST_COURSE"
RULES = (RULE_DDI, RULE_ITEM_DUP, RULE_CYCLE, RULE_COURSE)
TABLES = {RULE_DDI: "drug_interaction", RULE_ITEM_DUP: "item_dup_charge", RULE_CYCLE: "cycle_limit",
          RULE_COURSE: "course_limit"}
ROLLING_DAYS = 30
SOURCE = "基准测试知识库（合成，非官方） 第{}批"
COLUMNS = {
    "drug_interaction": ["point_id", "drug_a", "name_a", "drug_b", "name_b", "severity", "text", "source"],
    "item_dup_charge": ["point_id", "main_code", "main_name", "sub_code", "sub_name", "text", "source"],
    "cycle_limit": ["point_id", "code", "item_name", "max_times", "period_days", "text", "source"],
    "course_limit": ["point_id", "code", "item_name", "max_days", "text", "source"],
}


# ---- what the claims contain ---------------------------------------------------------------------


class Codes:
    """Codes of the claims file with their line counts and names (hilist_name of the first line)."""

    def __init__(self, claims: str):
        t = pq.read_table(claims, columns=["med_list_codg", "hilist_name"], read_dictionary=["med_list_codg"])
        codes = t.unify_dictionaries().column("med_list_codg").combine_chunks()
        vc = pc.value_counts(codes.indices)
        idx = vc.field("values").to_numpy(zero_copy_only=False)
        cnt = vc.field("counts").to_numpy(zero_copy_only=False)
        dictionary = codes.dictionary.to_pylist()
        self.count = {dictionary[int(i)]: int(c) for i, c in zip(idx, cnt) if dictionary[int(i)]}
        # one name per code: the name on its first line (the generator writes one name per code)
        ind = codes.indices.to_numpy(zero_copy_only=False)
        _, first_rows = np.unique(ind, return_index=True)
        hil = t.column("hilist_name").take(pa.array(first_rows)).to_pylist()
        names = {dictionary[int(ind[r])]: (name or dictionary[int(ind[r])]) for r, name in zip(first_rows, hil)}
        self.name = names
        self.lines = t.num_rows
        drugs = {c: n for c, n in self.count.items() if len(c) == 23 and c[0] == "X"}
        self.items = {c: n for c, n in self.count.items() if len(c) == 15 and c.isdigit()}
        pref: dict[str, int] = {}
        best: dict[str, tuple] = {}
        for c, n in drugs.items():
            p = c[:10]
            pref[p] = pref.get(p, 0) + n
            if n > best.get(p, (0, ""))[0]:
                best[p] = (n, c)
        self.prefixes = pref                      # 10-char generic prefix -> lines
        self.product = {p: c for p, (_, c) in best.items()}  # its commonest full code
        self.drug_lines = sum(drugs.values())
        self.item_lines = sum(self.items.values())

    def generic_name(self, prefix: str) -> str:
        n = self.name.get(self.product[prefix], prefix)
        return n.split("（")[0] if n else prefix


def _ranked(counts: dict, top: int | None = None) -> tuple[list, np.ndarray]:
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:top]
    return keys, np.array([counts[k] for k in keys], np.float64)


def _draw(rng, keys: list, weight: np.ndarray, size: int) -> list:
    p = weight / weight.sum()
    return [keys[i] for i in rng.choice(len(keys), size=size, p=p)]


# ---- knowledge rows ---------------------------------------------------------------------------------


DDI_POOL, DDI_ALPHA = None, 0.5  # drugs of interaction pairs: all generics of the claims, drawn by sqrt(lines)


def interaction_rows(codes: Codes, n: int, rng) -> list[dict]:
    keys, cnt = _ranked(codes.prefixes, DDI_POOL)
    w = cnt ** DDI_ALPHA
    by_class: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_class.setdefault(k[1:4], []).append(i)  # ATC therapeutic subgroup (e.g. C10)
    seen, rows = set(), []
    severities = ["禁忌", "严重", "中度", "中度", "轻度"]
    while len(rows) < n:
        a = int(rng.choice(len(keys), p=w / w.sum()))
        if rng.random() < 0.5 and len(by_class[keys[a][1:4]]) > 1:
            members = np.array(by_class[keys[a][1:4]])
            b = int(members[rng.choice(len(members), p=w[members] / w[members].sum())])
        else:
            b = int(rng.choice(len(keys), p=w / w.sum()))
        pa_, pb = keys[a], keys[b]
        if pa_ == pb or pa_.startswith(pb) or pb.startswith(pa_) or frozenset((pa_, pb)) in seen:
            continue
        seen.add(frozenset((pa_, pb)))
        na, nb = codes.generic_name(pa_), codes.generic_name(pb)
        sev = severities[int(rng.integers(len(severities)))]
        i = len(rows) + 1
        rows.append({"point_id": f"DDI-{i:05d}", "drug_a": pa_, "name_a": na, "drug_b": pb, "name_b": nb,
                     "severity": sev, "text": f"{na}与{nb}合用存在相互作用（{sev}），同日不宜合用",
                     "source": SOURCE.format(1 + i % 9)})
    return rows


def item_pair_rows(codes: Codes, n: int, rng) -> list[dict]:
    keys, cnt = _ranked(codes.items)
    w = np.ones(len(keys))  # every item equally likely: ~3 pairs per item on each side
    n = min(n, len(keys) * (len(keys) - 1))
    seen, rows = set(), []
    while len(rows) < n:
        a, b = (_draw(rng, keys, w, 2))
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        na, nb = codes.name.get(a, a), codes.name.get(b, b)
        i = len(rows) + 1
        rows.append({"point_id": f"DUP-{i:05d}", "main_code": a, "main_name": na, "sub_code": b, "sub_name": nb,
                     "text": f"同日收取【{na}】时不得另收【{nb}】", "source": SOURCE.format(1 + i % 7)})
    return rows


def cycle_rows(codes: Codes, n_items: int, n_drugs: int, rng) -> list[dict]:
    rows = []
    keys, _ = _ranked(codes.items)
    items = [keys[i] for i in sorted(rng.choice(len(keys), size=min(n_items, len(keys)), replace=False))]
    dkeys, _ = _ranked(codes.prefixes, 4000)
    drugs = [dkeys[i] for i in sorted(rng.choice(len(dkeys), size=min(n_drugs, len(dkeys)), replace=False))]
    for code in items:
        m = int(rng.choice([1, 1, 2, 2, 3, 4]))
        name = codes.name.get(code, code)
        rows.append((code, name, m))
    for p in drugs:
        m = int(rng.choice([4, 6, 8, 10, 12]))
        rows.append((p, codes.generic_name(p), m))
    out = []
    for i, (code, name, m) in enumerate(rows, 1):
        out.append({"point_id": f"CYCLE-{i:05d}", "code": code, "item_name": name, "max_times": m,
                    "period_days": ROLLING_DAYS, "text": f"【{name}】{ROLLING_DAYS}天内限{m}次",
                    "source": SOURCE.format(1 + i % 5)})
    return out


def course_rows(codes: Codes, n: int, rng) -> list[dict]:
    keys, _ = _ranked(codes.prefixes, 4000)
    chosen = [keys[i] for i in sorted(rng.choice(len(keys), size=min(n, len(keys)), replace=False))]
    out = []
    for i, p in enumerate(chosen, 1):
        d = int(rng.choice([7, 14, 14, 21, 28, 30, 60, 90]))
        name = codes.generic_name(p)
        out.append({"point_id": f"COURSE-{i:05d}", "code": p, "item_name": name, "max_days": d,
                    "text": f"【{name}】限支付{d}天", "source": SOURCE.format(1 + i % 4)})
    return out


# ---- the rule file ------------------------------------------------------------------------------------


def _line(label: str, code: str, name: str, cnt: int, pric: float, when: str | None = None, at: str | None = None) -> str:
    t = f", fee_ocur_time: {when}" if when else ""
    where = f" at {at}" if at else ""
    return (f'    line {label}{where} {{ med_list_codg: "{code}", hilist_name: "{name}", cnt: {cnt}, pric: {pric}{t} }}\n')


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def rules_text(codes: Codes, tables: dict, seed: int, source_claims: str) -> str:
    ddi = tables["drug_interaction"][0]
    a_code, b_code = codes.product[ddi["drug_a"]], codes.product[ddi["drug_b"]]
    a_name, b_name = _esc(codes.name.get(a_code, a_code)), _esc(codes.name.get(b_code, b_code))
    dup = tables["item_dup_charge"][0]
    m_name, s_name = _esc(dup["main_name"]), _esc(dup["sub_name"])
    cyc = min((r for r in tables["cycle_limit"] if len(r["code"]) == 15), key=lambda r: (r["max_times"], r["point_id"]))
    cyc_name, m = _esc(cyc["item_name"]), int(cyc["max_times"])
    crs = tables["course_limit"][0]
    crs_code, dmax = codes.product[crs["code"]], int(crs["max_days"])
    crs_name = _esc(codes.name.get(crs_code, crs["code"]))

    def day(n: int, hh: str = "09:00") -> str:
        import datetime as dt
        return f"{(dt.date(2025, 3, 1) + dt.timedelta(days=n)).isoformat()}T{hh}"

    # the lines of the examples
    ddi_a1, ddi_b2 = _line("L1", a_code, a_name, 1, 20, at="E1"), _line("L2", b_code, b_name, 2, 9, at="E2")
    ddi_b1t, ddi_a2t = _line("L1", b_code, b_name, 2, 9, day(0, "09:00")), _line("L2", a_code, a_name, 1, 20, day(0, "09:10"))
    ddi_b1, ddi_a2 = _line("L1", b_code, b_name, 2, 9), _line("L2", a_code, a_name, 1, 20)
    dup_m1, dup_s2 = (_line("L1", dup["main_code"], m_name, 1, 30, day(1, "09:00")),
                      _line("L2", dup["sub_code"], s_name, 1, 12.5, day(1, "15:00")))
    dup_s1, dup_m2 = (_line("L1", dup["sub_code"], s_name, 1, 12.5, day(1, "09:00")),
                      _line("L2", dup["main_code"], m_name, 1, 30, day(1, "15:00")))
    dup_s2_next, dup_s1_no_time = (_line("L2", dup["sub_code"], s_name, 1, 12.5, day(2, "09:00")),
                                   _line("L1", dup["sub_code"], s_name, 1, 12.5))
    crs_1, crs_2 = _line("L1", crs_code, crs_name, 2, 45, at="E1"), _line("L2", crs_code, crs_name, 2, 45, at="E2")

    out = [f"""# 跨行规则基准测试规则包（合成）：由 benches/gen_history.py 生成，请勿手工修改。
# 知识表的键取自理赔文件（{Path(source_claims).name}）中实际出现的编码，seed {seed}。

ruleset "跨行规则基准测试规则包（合成）" {{
  version     "bench-history-1"
  authority   "claimaudit benchmark (synthetic knowledge, not official)"
  description "跨行规则：药品相互作用、项目重复收费、周期超频次、药品限支付疗程"
}}

# A×B 表：key 列为 A，partner 列为 B（有序对子中 B 为违规项）。
table drug_interaction from "knowledge/drug_interaction.csv" {{
  key     drug_a   text match prefix
  partner drug_b   text match prefix
  column  point_id text role id
  column  name_a   text
  column  name_b   text
  column  severity text
  column  text     text role text
  column  source   text role source
}}

table item_dup_charge from "knowledge/item_dup_charge.csv" {{
  key     main_code text match exact
  partner sub_code  text match exact
  column  point_id  text role id
  column  main_name text
  column  sub_name  text
  column  text      text role text
  column  source    text role source
}}

table cycle_limit from "knowledge/cycle_limit.csv" {{
  key    code        text match prefix
  column point_id    text role id
  column item_name   text
  column max_times   number
  column period_days number
  column text        text role text
  column source      text role source
}}

table course_limit from "knowledge/course_limit.csv" {{
  key    code      text match prefix
  column point_id  text role id
  column item_name text
  column max_days  number
  column text      text role text
  column source    text role source
}}

rule {RULE_DDI} "药品相互作用" {{
  class    "药品相互作用"
  result   可疑
  severity 警示
  pair     p = drug_interaction[med_list_codg] within day unordered
  message  "同日使用存在相互作用的药品【{{hilist_name}}】与{{involved}}：{{p.text}}"

  example "同日先后开具：后开的为违规项" {{
    encounter E1 {{ med_type: "11", begntime: {day(0)} }}
    encounter E2 {{ med_type: "11", begntime: {day(0, "15:00")} }}
{ddi_a1}{ddi_b2}    expect flagged L2 amount 18
  }}
  example "顺序相反：仍是后开的为违规项" {{
    encounter {{ med_type: "11", begntime: {day(0)} }}
{ddi_b1t}{ddi_a2t}    expect flagged L2 amount 20
  }}
  example "同一时刻：按就诊号、明细号排序" {{
    encounter {{ med_type: "11", begntime: {day(0)} }}
{ddi_b1}{ddi_a2}    expect flagged L2
  }}
  example "不同日" {{
    encounter E1 {{ med_type: "11", begntime: {day(0)} }}
    encounter E2 {{ med_type: "11", begntime: {day(1)} }}
{ddi_a1}{ddi_b2}    expect none
  }}
  example "计费时间缺失：数据不足" {{
    encounter {{ med_type: "11" }}
{ddi_b1}    expect insufficient L1
  }}
}}

rule {RULE_ITEM_DUP} "项目重复收费" {{
  class    "项目重复收费"
  result   明确
  severity 拦截
  pair     p = item_dup_charge[med_list_codg] within day
  message  "同日收取【{{p.main_name}}】时又收取【{{hilist_name}}】：{{p.text}}"

  example "同日收取" {{
    encounter {{ med_type: "21", begntime: {day(0, "08:00")} }}
{dup_m1}{dup_s2}    expect flagged L2 amount 12.50
  }}
  example "被包含项目先收：仍为违规项" {{
    encounter {{ med_type: "21", begntime: {day(0, "08:00")} }}
{dup_s1}{dup_m2}    expect flagged L1 amount 12.50
  }}
  example "不同日" {{
    encounter {{ med_type: "21", begntime: {day(0, "08:00")} }}
{dup_m1}{dup_s2_next}    expect none
  }}
  example "计费时间缺失：数据不足" {{
    encounter {{ med_type: "21" }}
{dup_s1_no_time}    expect insufficient L1
  }}
}}

rule {RULE_CYCLE} "周期超频次" {{
  class    "周期超频次"
  result   可疑
  severity 警示
  lookup   k = cycle_limit[med_list_codg]
  window   w = same k within patient rolling {ROLLING_DAYS} days
  when     w.count > k.max_times
  message  "【{{hilist_name}}】{{k.text}}，{ROLLING_DAYS}天内第{{w.count}}次（此前：{{involved}}）"
"""]
    # cycle: m + 1 uses 7 days apart (two institutions) -> the last is flagged; 30 days apart -> none
    enc = "".join(f'    encounter E{j + 1} {{ fixmedins_code: "H{j % 2 + 1:03d}", med_type: "11", begntime: {day(7 * j)} }}\n'
                  for j in range(m + 1))
    lines = "".join(_line(f"L{j + 1}", cyc["code"], cyc_name, 1, 60, at=f"E{j + 1}") for j in range(m + 1))
    out.append(f"""
  example "{ROLLING_DAYS}天内第{m + 1}次（两家机构）" {{
{enc}{lines}    expect flagged L{m + 1} amount 60
  }}
""")
    enc = "".join(f'    encounter E{j + 1} {{ med_type: "11", begntime: {day(ROLLING_DAYS * j // m)} }}\n'
                  for j in range(m + 1))
    out.append(f"""  example "间隔足够" {{
{enc}{lines}    expect none
  }}
  example "计费时间缺失：数据不足" {{
    encounter {{ med_type: "11" }}
{_line("L1", cyc["code"], cyc_name, 1, 60)}    expect insufficient L1
  }}
}}

rule {RULE_COURSE} "药品限支付疗程" {{
  class    "药品限支付疗程"
  result   明确
  severity 拦截
  lookup   k = course_limit[med_list_codg]
  window   w = same k within patient
  when     w.span_days > k.max_days
  message  "药品【{{hilist_name}}】{{k.text}}；自首次使用至今{{w.span_days}}天"

  example "第{dmax + 1}天仍在使用" {{
    encounter E1 {{ med_type: "11", begntime: {day(0)} }}
    encounter E2 {{ med_type: "11", begntime: {day(dmax)} }}
{crs_1}{crs_2}    expect flagged L2 amount 90
  }}
  example "{dmax}天以内" {{
    encounter E1 {{ med_type: "11", begntime: {day(0)} }}
    encounter E2 {{ med_type: "11", begntime: {day(dmax - 1)} }}
{crs_1}{crs_2}    expect none
  }}
  example "计费时间缺失：数据不足" {{
    encounter {{ med_type: "11" }}
{_line("L1", crs_code, crs_name, 2, 45)}    expect insufficient L1
  }}
}}
""")
    return "".join(out)


def generate(claims: str, out_dir: Path, seed: int = DEFAULT_SEED, interactions: int = 2000, item_pairs: int = 900,
             cycle_items: int = 100, cycle_drugs: int = 300, courses: int = 300) -> dict:
    t0 = time.perf_counter()
    codes = Codes(claims)
    tables = {
        "drug_interaction": interaction_rows(codes, interactions, np.random.default_rng([seed, 41])),
        "item_dup_charge": item_pair_rows(codes, item_pairs, np.random.default_rng([seed, 42])),
        "cycle_limit": cycle_rows(codes, cycle_items, cycle_drugs, np.random.default_rng([seed, 43])),
        "course_limit": course_rows(codes, courses, np.random.default_rng([seed, 44])),
    }
    kdir = out_dir / "knowledge"
    kdir.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        with (kdir / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS[name])
            w.writeheader()
            w.writerows(rows)
    (out_dir / "bench_history.rules").write_text(rules_text(codes, tables, seed, claims), encoding="utf-8")
    return {"script": "gen_history", "claims": claims, "claim_lines": codes.lines, "drug_prefixes": len(codes.prefixes),
            "service_items": len(codes.items), "tables": {k: len(v) for k, v in tables.items()}, "seed": seed,
            "seconds": round(time.perf_counter() - t0, 2), "out": str(out_dir)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", required=True, help="claims Parquet (gen_claims.py --history) whose codes key the tables")
    ap.add_argument("-o", "--out", type=Path, default=Path("benches/out/ruleset_history"), help="ruleset directory")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--interactions", type=int, default=2000, help="drug_interaction pairs (default 2,000)")
    ap.add_argument("--item-pairs", type=int, default=900, help="item_dup_charge pairs (default 900)")
    ap.add_argument("--cycle-items", type=int, default=100, help="cycle_limit rows for service items (default 100)")
    ap.add_argument("--cycle-drugs", type=int, default=300, help="cycle_limit rows for drugs (default 300)")
    ap.add_argument("--courses", type=int, default=300, help="course_limit rows (default 300)")
    a = ap.parse_args(argv)
    print(json.dumps(generate(a.claims, a.out, a.seed, a.interactions, a.item_pairs, a.cycle_items, a.cycle_drugs,
                              a.courses), ensure_ascii=False))


if __name__ == "__main__":
    main()
