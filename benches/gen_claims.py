#!/usr/bin/env python3
"""Generate synthetic claim lines in the national schema (one row per fee line, patient and
encounter fields joined) and write them to Parquet. Vectorised with numpy + pyarrow, fixed seed.

    python benches/gen_claims.py --lines 10000000 --drugs 20000 -o benches/out/claims_10m.parquet

What the data looks like:
- patients (about lines/25) with sex, birth date and insurance type; institutions (about lines/5000):
  hospitals of levels 01–10 and pharmacies (level 11, 医疗类别 41); doctors per institution;
- encounters (11 普通门诊, 13 急诊, 14 门诊慢特病, 21 住院, 41 药店购药) of 1–8 prescriptions of 5–10 lines;
  a therapeutic area chosen by the patient's age and sex gives real ICD-10 医保版 2.0 diagnoses;
- drugs by Zipf-like popularity, mostly indicated for the main diagnosis, dosed mostly within the
  label (see catalogue.py): a few percent of lines break a dose / units-per-day / age / sex /
  indication limit;
- about 5% service-item lines (15-digit codes, list_type 201, no dose);
- dirt: null or unknown sex, null birth dates, dose text in g/mg/µg/ug/mcg, in tablets (2片), in
  ml or IU, unparsable (适量, 1-2片) or null, odd spellings that parse (0．5g, '500 MG', 每次0.5g,
  Q8H, 每日 3 次, 2次/d, 'tid' + ideographic space) or not (每日十二次, 0.5Ｇ), irregular frequencies
  (prn, st, 遵医嘱), missing diagnoses (30% of pharmacy purchases), lower-case codes, '|' or ',' as
  diagnosis separators, null or zero days supplied, birth dates after the service (newborns),
  0.5% invalid lines (vali_flag 0, kept: the engine does not filter them).

The output depends only on (--lines, --drugs, --seed, --chunk-lines) and the ICD-10 source
(the shared national list when present, else benches/icd10_sample.csv; see --icd).

--history (for the cross-line benchmark, bench_history.py) writes claims with patient histories; without
it the output is exactly what it always was. With it:
- about lines/80 patients (not lines/25), so a patient has ~8 encounters over the year, more for the
  heavy users; each patient has a home hospital and a home pharmacy (65% of encounters), the rest at
  other institutions;
- half of a patient's encounters are for the patient's chronic condition (one therapeutic area and main
  diagnosis per patient), so the same drugs recur across encounters and months;
- 15% service-item lines (15-digit codes) in hospital encounters, items by Zipf popularity;
- 70% of prescriptions are billed at one time (all their lines tie on fee_ocur_time; outpatient
  prescriptions 10 minutes apart, inpatient daily orders at 08:00), encounter start times on 10-minute
  slots, and 2% of encounters are a second registration of the previous encounter's patient at the same
  time (ties across encounters, broken by mdtrt_id);
- 0.3% of lines have no fee_ocur_time (insufficient data for cross-line rules).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import (DEFAULT_SEED, FORMS, GROUPS, Catalogue, all_categories,  # noqa: E402
                       build_catalogue, load_icd, write_icd_sample)

SCHEMA = pa.schema([
    ("psn_no", pa.string()), ("gend", pa.string()), ("brdy", pa.date32()), ("insutype", pa.string()),
    ("fixmedins_code", pa.string()), ("hosp_lv", pa.string()),
    ("mdtrt_id", pa.string()), ("med_type", pa.string()), ("begntime", pa.timestamp("us")),
    ("dscg_maindiag_code", pa.string()), ("diag_codes", pa.string()),
    ("feedetl_sn", pa.string()), ("rxno", pa.string()), ("fee_ocur_time", pa.timestamp("us")),
    ("med_list_codg", pa.string()), ("hilist_name", pa.string()), ("list_type", pa.string()),
    ("cnt", pa.float64()), ("pric", pa.float64()), ("det_item_fee_sumamt", pa.float64()),
    ("inscp_scp_amt", pa.float64()), ("sin_dos_dscr", pa.string()), ("used_frqu_dscr", pa.string()),
    ("prd_days", pa.int32()), ("bilg_dept_codg", pa.string()), ("bilg_dr_codg", pa.string()),
    ("hosp_appr_flag", pa.string()), ("vali_flag", pa.string()),
])

REGIONS = ["430102", "430103", "430104", "430105", "430111", "430112", "430121", "430181", "430202", "430302",
           "430402", "430502", "430602", "430702"]
HOSP_LEVELS = ["01", "02", "03", "05", "06", "08", "09", "10"]
HOSP_LEVEL_P = [0.01, 0.10, 0.05, 0.15, 0.10, 0.30, 0.19, 0.10]
COMORBID = ["I10", "E11", "E78", "I25", "K29", "J44", "N18", "M81"]

# regular frequencies by administrations per day, each written in several ways
FREQ_TEXTS = {
    1: ["qd", "qd", "qd", "QD", "每日1次", "1次/日", "qn", "每日一次", "q24h", "Qd.", "每天1次"],
    2: ["bid", "bid", "bid", "BID", "q12h", "每日2次", "2次/日", "一日两次", "Bid"],
    3: ["tid", "tid", "tid", "TID", "q8h", "每日3次", "3次/日", "每天三次", "Tid"],
    4: ["qid", "qid", "q6h", "每日4次", "4次/日"],
    5: ["每日5次", "5次/日"],
}
# irregular orders and odd spellings (some parse, some do not: the rules must agree with dsl/units.py)
IRREGULAR_FREQ = ["prn", "prn", "prn", "st", "必要时", "遵医嘱", "once", "qod", "qw", "Q8H", "q8h.", " bid ", "每日 3 次",
                  "1日3次", "日3次", "3次/天", "2次/d", "每日十次", "每日十二次", "tid\u3000", "Tid..", "biw"]
# unparsable or odd dose text (some parse: full-width dot, upper-case or spaced units, other dimensions)
UNPARSABLE_DOSE = ["适量", "1-2片", "遵医嘱", "半片", "0.5g-1g", "见说明书", "0．5g", "500 MG", "0.5Ｇ", "每日0.5g",
                   "\u30000.25g", "1000IU", "2.5ml", "5", "0.25g，", "1袋/次"]
MICRO = ["µg", "μg", "ug", "mcg"]
SERVICE_ITEMS = ["诊查费", "静脉输液", "肌肉注射", "血常规", "尿常规", "心电图", "胸部X线摄影", "B超检查", "CT平扫",
                 "换药", "床位费", "一级护理", "肝功能", "肾功能", "血糖测定"]
# therapeutic-area weights (groups 1..13) by (age bracket, sex)
_GW = {
    ("child", "1"): [0.5, 1, 10, 5, 1.5, 0.5, 1, 0, 0, 0.3, 3, 4, 1],
    ("child", "2"): [0.5, 1, 10, 5, 1.5, 0.5, 1, 0, 0, 0.3, 3, 4, 1],
    ("adult", "1"): [4, 3, 6, 5, 2.5, 2, 3, 1.5, 0, 1.5, 2, 2.5, 1],
    ("adult", "2"): [3, 3, 6, 5, 2.5, 2.5, 3, 0, 3.5, 1.5, 2.5, 2.5, 1.5],
    ("elder", "1"): [9, 6, 4, 3, 5, 1, 4, 3, 0, 2.5, 1, 1.5, 1.5],
    ("elder", "2"): [9, 6, 4, 3, 5, 1.2, 4.5, 0, 0.5, 2, 1, 1.5, 1.5],
}
for _b in ("child", "adult", "elder"):
    _GW[(_b, "?")] = [(a + b) / 2 if i not in (7, 8) else 0 for i, (a, b) in enumerate(zip(_GW[(_b, "1")], _GW[(_b, "2")]))]

EPOCH = np.datetime64("1970-01-01", "D")
HISTORY_LINES_PER_PATIENT = 80   # --history: patients = lines / 80 (about 8 encounters each)
HISTORY_SERVICE_SHARE = 0.15     # --history: service-item lines in hospital encounters
Y2025 = np.datetime64("2025-01-01", "D")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    s = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), s, "")


def _sample_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


class Pools:
    """Drug pools to prescribe from: by ICD-10 category (drugs indicated for it), by group, general, all."""

    def __init__(self, cat: Catalogue):
        self.cats = all_categories()
        self.cat_index = {c: i for i, c in enumerate(self.cats)}
        w = cat.popularity
        by_cat: dict[int, list[int]] = {i: [] for i in range(len(self.cats))}
        for d, inds in enumerate(cat.indications):
            for c in inds:
                by_cat[self.cat_index[c]].append(d)
        self.members, self.cdf = {}, {}
        for i, ds in by_cat.items():
            if not ds:  # tiny catalogues: fall back to the group
                g = next(gi for gi, grp in enumerate(GROUPS) if self.cats[i] in grp[2])
                ds = list(np.flatnonzero(cat.group == g)) or list(range(cat.n))
            ds = np.array(ds)
            self.members[("cat", i)], self.cdf[("cat", i)] = ds, np.cumsum(w[ds])
        for g in range(len(GROUPS)):
            ds = np.flatnonzero(cat.group == g)
            if ds.size == 0:
                ds = np.arange(cat.n)
            self.members[("grp", g)], self.cdf[("grp", g)] = ds, np.cumsum(w[ds])
        self.members[("all", 0)], self.cdf[("all", 0)] = np.arange(cat.n), np.cumsum(w)
        # a safe substitute per category: the most popular indicated drug without age/sex limits
        unrestricted = np.isnan(cat.min_age) & np.isnan(cat.max_age) & (cat.sex == 0)
        general = self.members[("grp", 0)]
        fallback = general[np.argmax(w[general])]
        self.subst = np.empty(len(self.cats), dtype=np.int64)
        for i in range(len(self.cats)):
            ds = self.members[("cat", i)]
            ok = ds[unrestricted[ds]]
            self.subst[i] = ok[np.argmax(w[ok])] if ok.size else fallback

    def sample(self, kind: str, keys: np.ndarray, rng) -> np.ndarray:
        out = np.empty(len(keys), dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        bounds = np.flatnonzero(np.diff(sk)) + 1
        for part in np.split(order, bounds):
            if part.size == 0:
                continue
            k = (kind, int(keys[part[0]]))
            ds, cdf = self.members[k], self.cdf[k]
            out[part] = ds[_sample_cdf(cdf, rng.random(part.size))]
        return out


class Population:
    """Patients and institutions, shared by all chunks."""

    def __init__(self, n_lines: int, seed: int, history: bool = False):
        rng = np.random.default_rng([seed, 2])
        P = max(100, n_lines // (HISTORY_LINES_PER_PATIENT if history else 25))
        self.P = P
        self.psn_no = _ids("4301", np.arange(1, P + 1), 16)
        self.gend = rng.choice(5, size=P, p=[0.494, 0.494, 0.003, 0.003, 0.006])  # '1','2','0','9',null
        bracket = rng.choice(4, size=P, p=[0.138, 0.56, 0.30, 0.002])  # child, adult, elder, newborn
        lo = np.array([0, 15, 65, 0])[bracket] * 365.25
        hi = np.array([15, 65, 100, 0])[bracket] * 365.25
        age_days = (lo + rng.random(P) * (hi - lo)).astype(np.int64)
        brdy = Y2025 - age_days
        newborn = bracket == 3
        brdy[newborn] = np.datetime64("2024-11-01") + rng.integers(0, 425, size=newborn.sum())
        self.brdy = brdy
        self.brdy_null = rng.random(P) < 0.002
        self.bracket = np.where(bracket == 3, 0, bracket)
        self.insutype = rng.choice(4, size=P, p=[0.57, 0.40, 0.01, 0.02])  # 310 390 340 510
        self.cdf = np.cumsum(np.exp(rng.normal(0, 1.0, size=P)))
        sexkey = np.where(self.gend == 0, 0, np.where(self.gend == 1, 1, 2))  # '1', '2', unknown
        self.combo = self.bracket * 3 + sexkey

        n_inst = max(20, n_lines // 5000)
        self.n_inst = n_inst
        self.pharmacy = rng.random(n_inst) < 0.22
        self.pharmacy[0] = False
        self.hosp_lv = np.where(self.pharmacy, len(HOSP_LEVELS), rng.choice(len(HOSP_LEVELS), size=n_inst, p=HOSP_LEVEL_P))
        region = rng.integers(len(REGIONS), size=n_inst)
        self.region = region
        codes = [("P" if self.pharmacy[i] else "H") + REGIONS[region[i]] + f"{i + 1:05d}" for i in range(n_inst)]
        self.inst_code = pa.array(codes, pa.string())
        rank = rng.permutation(n_inst)
        self.inst_cdf = np.cumsum(np.where(self.pharmacy, 0.25, 1.0) / (rank + 1.0) ** 0.9)  # pharmacies: small
        self.n_docs = np.clip(rng.geometric(0.08, size=n_inst), 3, 40)
        docs = [f"D{REGIONS[region[i]]}{i % 10000:04d}{j:02d}" for i in range(n_inst) for j in range(40)]
        self.doc_code = pa.array(docs, pa.string())
        if history:
            self._history(np.random.default_rng([seed, 2, 1]))

    def _history(self, h) -> None:
        """--history: a home hospital and pharmacy and a chronic condition per patient (own generator)."""
        P = self.P
        weight = np.diff(np.concatenate([[0.0], self.inst_cdf]))
        hosp, pharm = np.flatnonzero(~self.pharmacy), np.flatnonzero(self.pharmacy)
        self.home_hosp = hosp[_sample_cdf(np.cumsum(weight[hosp]), h.random(P))]
        self.home_pharm = (pharm[_sample_cdf(np.cumsum(weight[pharm]), h.random(P))] if pharm.size
                           else self.home_hosp)
        self.chronic_group = np.empty(P, dtype=np.int64)
        for c in range(9):
            m = self.combo == c
            if m.any():
                self.chronic_group[m] = h.choice(len(GROUPS), size=int(m.sum()), p=GROUP_W[c])
        self.chronic_u = h.random(P)


def _group_weights():
    rows = []
    for b in ("child", "adult", "elder"):
        for s in ("1", "2", "?"):
            w = np.array([0.0] + _GW[(b, s)])
            rows.append(w / w.sum())
    return rows


GROUP_W = _group_weights()


class Static:
    """Per-run lookup arrays that every chunk uses."""

    def __init__(self, cat: Catalogue, pools: Pools, pop: Population, icd):
        self.cat_codes, self.cat_start, self.cat_count = icd
        self.ncat = np.array([len(g[2]) for g in GROUPS])
        self.gcat = np.zeros((len(GROUPS), max(self.ncat)), dtype=np.int64)  # group, position -> category
        for g, grp in enumerate(GROUPS):
            for j, c in enumerate(grp[2]):
                self.gcat[g, j] = pools.cat_index[c]
        self.comorbid = np.array([pools.cat_index[c] for c in COMORBID])
        n_items = len(SERVICE_ITEMS) * 20
        self.n_items = n_items
        item_codes = [f"{(i * 7919) % 10**6 + 1:06d}{i:04d}00000" for i in range(n_items)]
        item_names = [f"{SERVICE_ITEMS[i % len(SERVICE_ITEMS)]}（{i // len(SERVICE_ITEMS) + 1}）" for i in range(n_items)]
        self.item_price = np.round(np.exp(np.random.default_rng(7).normal(3.0, 1.0, n_items)), 2)
        self.item_cdf = np.cumsum(1.0 / (np.random.default_rng(8).permutation(n_items) + 1.0))  # --history: Zipf
        self.n_prod = cat.n_products
        self.codes = pa.array(list(cat.prod_code) + item_codes, pa.string())  # products, then service items
        self.names = pa.array(list(cat.prod_name) + item_names, pa.string())
        self.dose_dict, self.dose_base = dose_dictionary(cat)
        flat = [t for k in range(1, 6) for t in FREQ_TEXTS[k]] + IRREGULAR_FREQ
        self.freq_dict = pa.array(flat, pa.string())
        self.fcount = np.array([len(FREQ_TEXTS[k]) for k in range(1, 6)])
        self.fstart = np.concatenate([[0], np.cumsum(self.fcount)])
        self.dept = pa.array([g[3] for g in GROUPS], pa.string())
        self.regions = pa.array(REGIONS, pa.string())
        # calendar of 2024-01-01 .. 2027-12-31 for fast (year, month, day) of service dates
        self.cal0 = np.datetime64("2024-01-01", "D")
        days = self.cal0 + np.arange(4 * 366)
        self.cal_y, self.cal_m, self.cal_d = _ymd(days)
        self.birth_y, self.birth_m, self.birth_d = _ymd(pop.brdy)


def _dict(dictionary: pa.Array, idx, mask=None) -> pa.Array:
    """Strings from a dictionary by index (decoded; fast), mask marks nulls."""
    if not isinstance(dictionary, pa.Array):
        dictionary = pa.array(list(dictionary), pa.string())
    ind = pa.array(np.asarray(idx, dtype=np.int32), pa.int32(), mask=mask)
    return pa.DictionaryArray.from_arrays(ind, dictionary).cast(pa.string())


def make_chunk(n: int, cat: Catalogue, pools: Pools, pop: Population, st: Static, rng, offsets: dict,
               hrng=None) -> pa.Table:
    """One chunk of lines; ``hrng`` (a second generator) turns on --history: it only adds draws and
    overrides, so the main generator's stream and the default output are unchanged without it."""
    # ---- encounter structure --------------------------------------------------------------
    E0 = n // 5 + 10
    inst = _sample_cdf(pop.inst_cdf, rng.random(E0))
    mt = np.where(pop.pharmacy[inst], 4, rng.choice(4, size=E0, p=[0.55, 0.05, 0.15, 0.25]))  # 11 13 14 21 41
    r = rng.random(E0)
    n_rx = np.select([mt == 4, mt == 3, mt == 2], [1, 2 + np.minimum(rng.geometric(0.4, E0) - 1, 6), 1 + (r < 0.15)],
                     1 + (r < 0.25))
    rx_enc = np.repeat(np.arange(E0), n_rx)
    rx_lines = rng.integers(5, 11, size=len(rx_enc))
    cum = np.cumsum(rx_lines)
    R = int(np.searchsorted(cum, n)) + 1
    rx_lines = rx_lines[:R].copy()
    rx_lines[-1] -= int(cum[R - 1] - n)
    rx_enc = rx_enc[:R]
    E = int(rx_enc[-1]) + 1
    inst, mt = inst[:E], mt[:E]
    rx_first = np.concatenate([[0], np.flatnonzero(np.diff(rx_enc)) + 1])
    rx_ord = np.arange(R) - np.repeat(rx_first, np.diff(np.concatenate([rx_first, [R]])))

    # ---- encounter attributes --------------------------------------------------------------
    patient = _sample_cdf(pop.cdf, rng.random(E))
    if hrng is not None:
        # a second registration of the previous encounter's patient at the same time (ties across encounters)
        dup = hrng.random(E) < 0.02
        dup[0] = False
        src = np.maximum.accumulate(np.where(dup, 0, np.arange(E)))
        patient = patient[src]
        home = hrng.random(E) < 0.65  # the patient's home hospital / pharmacy (same kind of institution)
        inst = np.where(home, np.where(pop.pharmacy[inst], pop.home_pharm[patient], pop.home_hosp[patient]), inst)
    combo = pop.combo[patient]
    group = np.empty(E, dtype=np.int64)
    for c in range(9):
        m = combo == c
        if m.any():
            group[m] = rng.choice(len(GROUPS), size=int(m.sum()), p=GROUP_W[c])
    if hrng is not None:
        chronic = hrng.random(E) < 0.5  # an encounter for the patient's chronic condition
        group = np.where(chronic, pop.chronic_group[patient], group)
    ncat = st.ncat[group]
    main_cat = st.gcat[group, np.floor(ncat * rng.random(E) ** 2.2).astype(np.int64)]
    if hrng is not None:
        main_cat = np.where(chronic, st.gcat[group, np.floor(ncat * pop.chronic_u[patient] ** 2.2).astype(np.int64)],
                            main_cat)
    n_sec = rng.choice(4, size=E, p=[0.35, 0.35, 0.20, 0.10])
    parts = []
    for j in range(4):
        if j == 0:
            c = main_cat
        else:
            c_same = st.gcat[group, np.floor(ncat * rng.random(E)).astype(np.int64)]
            c_co = st.comorbid[rng.integers(len(COMORBID), size=E)]
            c = np.where(rng.random(E) < 0.55, c_same, c_co)
        ci = st.cat_start[c] + np.floor(st.cat_count[c] * rng.random(E) ** 2).astype(np.int64)
        # (the first part is never null: pyarrow 26 drops rows whose parts are all null under 'skip')
        parts.append(_dict(st.cat_codes, ci, mask=None if j == 0 else n_sec < j))
    no_diag = np.where(mt == 4, rng.random(E) < 0.30, rng.random(E) < 0.003)
    sep = _dict(pa.array([";", "|", ","]), rng.choice(3, size=E, p=[0.98, 0.01, 0.01]))
    diag = pc.binary_join_element_wise(*parts, sep, null_handling="skip")
    null_str = pa.scalar(None, pa.string())
    main_arr = pc.if_else(pa.array(no_diag), null_str, parts[0])
    diag = pc.if_else(pa.array(no_diag | (rng.random(E) < 0.01)), null_str, diag)
    lower = pa.array(rng.random(E) < 0.003)
    main_arr = pc.if_else(lower, pc.utf8_lower(main_arr), main_arr)
    diag = pc.if_else(lower, pc.utf8_lower(diag), diag)

    day = rng.integers(0, 365, size=E)
    secs = rng.integers(7 * 3600 + 1800, 20 * 3600, size=E)
    if hrng is not None:
        secs = secs // 600 * 600  # 10-minute slots
        day, secs = day[src], secs[src]
    begn_us = ((Y2025 - EPOCH).astype(np.int64) + day) * 86_400_000_000 + secs * 1_000_000
    doc = np.floor(rng.random(E) * pop.n_docs[inst]).astype(np.int64)
    e_off, r_off, l_off = offsets["enc"], offsets["rx"], offsets["line"]
    mdtrt_e = pc.binary_join_element_wise(_dict(st.regions, pop.region[inst]), _ids("", e_off + np.arange(E) + 1, 14), "")
    rxno_r = _ids("RX", r_off + np.arange(R) + 1, 14)

    # ---- lines -------------------------------------------------------------------------------
    line_rx = np.repeat(np.arange(R), rx_lines)
    le = rx_enc[line_rx]
    lp = patient[le]
    lmt = mt[le]
    u_service = rng.random(n)
    service = (u_service < (0.05 if hrng is None else HISTORY_SERVICE_SHARE)) & (lmt != 4)
    u = rng.random(n)
    lcat = main_cat[le]
    lgroup = group[le]
    drug = np.empty(n, dtype=np.int64)
    m_cat, m_grp = u < 0.80, (u >= 0.80) & (u < 0.88)
    m_gen, m_any = (u >= 0.88) & (u < 0.98), u >= 0.98
    drug[m_cat] = pools.sample("cat", lcat[m_cat], rng)
    drug[m_grp] = pools.sample("grp", lgroup[m_grp], rng)
    drug[m_gen] = pools.sample("grp", np.zeros(int(m_gen.sum()), np.int64), rng)
    drug[m_any] = pools.sample("all", np.zeros(int(m_any.sum()), np.int64), rng)

    # time of service and age at it
    fee_us = begn_us[le] + np.where(lmt == 3,  # inpatient: one prescription a day
                                    rx_ord[line_rx] * 86_400_000_000 + rng.integers(0, 10 * 3600, n) * 1_000_000,
                                    rng.integers(0, 90 * 60, n) * 1_000_000)
    if hrng is not None:  # most prescriptions billed at one time: ties on fee_ocur_time
        rx_tie = hrng.random(R) < 0.7
        rx_mt = mt[rx_enc]
        rx_time = begn_us[rx_enc] + np.where(rx_mt == 3, rx_ord * 86_400_000_000 - (secs[rx_enc] - 8 * 3600) * 1_000_000,
                                             rx_ord * 600_000_000)
        fee_us = np.where(rx_tie[line_rx], rx_time[line_rx], fee_us)
        no_time = hrng.random(n) < 0.003
    fday = fee_us // 86_400_000_000 - (st.cal0 - EPOCH).astype(np.int64)
    age = (st.cal_y[fday] - st.birth_y[lp]
           - ((st.cal_m[fday] * 100 + st.cal_d[fday]) < (st.birth_m[lp] * 100 + st.birth_d[lp])))
    gend = pop.gend[lp]
    known_age = ~pop.brdy_null[lp]
    min_age, max_age = cat.min_age[drug], cat.max_age[drug]
    too_young = known_age & (age < np.nan_to_num(min_age, nan=-1))
    too_old = known_age & (age > np.nan_to_num(max_age, nan=999))
    dsex = cat.sex[drug]
    wrong_sex = (dsex != 0) & (gend <= 1) & (dsex != gend + 1)
    fix = (too_young | too_old | wrong_sex) & (rng.random(n) < 0.93)
    drug[fix] = pools.subst[lcat[fix]]

    prod = cat.prod_start[drug] + np.floor(rng.random(n) * cat.prod_count[drug]).astype(np.int64)
    item = rng.integers(st.n_items, size=n)
    if hrng is not None:
        item = _sample_cdf(st.item_cdf, hrng.random(n))
    code_idx = np.where(service, st.n_prod + item, prod)
    list_type = _dict(pa.array(["101", "201"]), service.astype(np.int64))

    # dose and frequency
    mult_idx = rng.choice(4, size=n, p=[0.92, 0.04, 0.03, 0.01])  # x1 x2 x0.5 x1.5
    fd = cat.freq[drug].astype(np.int64)
    fr = rng.random(n)
    freq_n = np.where(fr < 0.89, fd, np.where(fr < 0.94, fd + 1, np.maximum(fd - 1, 1)))
    fi = st.fstart[freq_n - 1] + np.floor(rng.random(n) ** 1.5 * st.fcount[freq_n - 1]).astype(np.int64)
    irregular = rng.random(n) < 0.04
    fi = np.where(irregular, st.fstart[-1] + rng.integers(len(IRREGULAR_FREQ), size=n), fi)
    freq_text = _dict(st.freq_dict, fi, mask=service | (rng.random(n) < 0.01))

    v = rng.choice(10, size=n, p=[0.70, 0.12, 0.03, 0.02, 0.01, 0.01, 0.07, 0.01, 0.02, 0.01])
    v = np.where((v == 7) & (cat.form[drug] != 2), 0, v)  # ml only for injections
    dose_idx = np.where(v < 8, (drug * 4 + mult_idx) * 8 + np.minimum(v, 7),
                        st.dose_base["unparsable"] + rng.integers(len(UNPARSABLE_DOSE), size=n))
    dose_text = _dict(st.dose_dict, dose_idx, mask=service | (v == 9))

    pdays = np.empty(n, dtype=np.int64)
    for k, (vals, p) in PDAYS.items():
        m = lmt == k
        pdays[m] = rng.choice(vals, size=int(m.sum()), p=p)
    pdays = np.where(rng.random(n) < 0.001, 0, pdays)
    pdays_null = service | (rng.random(n) < 0.003)
    mult = np.array([1.0, 2.0, 0.5, 1.5])[mult_idx]
    per_day = cat.units_per_dose[drug] * mult * np.where(irregular, fd, freq_n)
    over = np.where(rng.random(n) < 0.03, 1.5 + 1.5 * rng.random(n), 1.0)
    cnt = np.ceil(per_day * np.maximum(pdays, 1) * over)
    cnt = np.where(service, rng.integers(1, 4, size=n), cnt).astype(np.float64)
    pric = np.where(service, st.item_price[item], cat.prod_price[prod])
    det = np.round(cnt * pric, 2)
    ir = rng.random(n)
    inscp = np.where(ir < 0.93, det, np.where(ir < 0.96, 0.0, np.round(det * (0.3 + 0.6 * rng.random(n)), 2)))

    lpharm = lmt == 4
    appr = _dict(pa.array(["1", "0"]), (rng.random(n) >= 0.05).astype(np.int64), mask=service | (rng.random(n) < 0.16))
    vali = _dict(pa.array(["1", "0"]), (rng.random(n) < 0.005).astype(np.int64))
    linst = inst[le]
    cols = {
        "psn_no": _dict(pop.psn_no, lp),
        "gend": _dict(pa.array(["1", "2", "0", "9", "?"]), gend, mask=gend == 4),
        "brdy": pa.array((pop.brdy[lp] - EPOCH).astype(np.int32), pa.int32(), mask=pop.brdy_null[lp]).cast(pa.date32()),
        "insutype": _dict(pa.array(["310", "390", "340", "510"]), pop.insutype[lp]),
        "fixmedins_code": _dict(pop.inst_code, linst),
        "hosp_lv": _dict(pa.array(HOSP_LEVELS + ["11"]), pop.hosp_lv[linst]),
        "mdtrt_id": _dict(mdtrt_e, le),
        "med_type": _dict(pa.array(["11", "13", "14", "21", "41"]), lmt),
        "begntime": pa.array(begn_us[le], pa.timestamp("us")),
        "dscg_maindiag_code": _dict(main_arr, le),
        "diag_codes": _dict(diag, le),
        "feedetl_sn": _ids("FD", l_off + np.arange(n) + 1, 16),
        "rxno": _dict(rxno_r, line_rx, mask=service),
        "fee_ocur_time": pa.array(fee_us, pa.timestamp("us"), mask=None if hrng is None else no_time),
        "med_list_codg": _dict(st.codes, code_idx),
        "hilist_name": _dict(st.names, code_idx),
        "list_type": list_type,
        "cnt": pa.array(cnt),
        "pric": pa.array(pric),
        "det_item_fee_sumamt": pa.array(det),
        "inscp_scp_amt": pa.array(inscp),
        "sin_dos_dscr": dose_text,
        "used_frqu_dscr": freq_text,
        "prd_days": pa.array(pdays.astype(np.int32), pa.int32(), mask=pdays_null),
        "bilg_dept_codg": _dict(st.dept, lgroup, mask=lpharm),
        "bilg_dr_codg": _dict(pop.doc_code, linst * 40 + doc[le], mask=lpharm),
        "hosp_appr_flag": appr,
        "vali_flag": vali,
    }
    offsets["enc"] += E
    offsets["rx"] += R
    offsets["line"] += n
    return pa.Table.from_pydict(cols, schema=SCHEMA)


PDAYS = {0: ([1, 2, 3, 5, 7, 10, 14], [0.12, 0.10, 0.30, 0.15, 0.20, 0.05, 0.08]),  # 11 普通门诊
         1: ([1, 2, 3], [0.5, 0.3, 0.2]),                                          # 13 急诊
         2: ([14, 28, 30], [0.3, 0.3, 0.4]),                                       # 14 门诊慢特病
         3: ([1, 2, 3], [0.6, 0.25, 0.15]),                                        # 21 住院 (daily orders)
         4: ([3, 5, 7, 14, 30], [0.2, 0.2, 0.3, 0.15, 0.15])}                      # 41 药店购药


def _ymd(days: np.ndarray):
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    return (y.astype(np.int64) + 1970, (m - y.astype("datetime64[M]")).astype(np.int64) + 1,
            (d - m.astype("datetime64[D]")).astype(np.int64) + 1)


def dose_dictionary(cat: Catalogue) -> tuple[pa.Array, dict]:
    """Every dose text a drug line can carry: (drug, multiple of the usual dose, way of writing)."""
    out = []
    for d in range(cat.n):
        units = cat.units_per_dose[d]
        count_unit = FORMS[cat.form[d]][2]
        for mult in (1.0, 2.0, 0.5, 1.5):
            v = cat.strength_mg[d] * units * mult
            if v >= 1000:
                natural = f"{v / 1000:g}g"
            elif v < 1:
                natural = f"{v * 1000:g}{MICRO[d % 4]}"
            else:
                natural = f"{v:g}mg"
            grams = f"{v / 1000:g}g" if v >= 50 else natural
            out += [natural, grams, f"{v:g} mg", f"每次{natural}", f"{natural}/次", natural.upper(),
                    f"{units * mult:g}{count_unit}", f"{units * mult * 2:g}ml"]
    base = {"unparsable": len(out)}
    out += UNPARSABLE_DOSE
    return pa.array(out, pa.string()), base


def icd_arrays(by_cat: dict) -> tuple:
    cats = all_categories()
    codes, start, count = [], [], []
    for c in cats:
        start.append(len(codes))
        codes += by_cat[c]
        count.append(len(by_cat[c]))
    return pa.array(codes, pa.string()), np.array(start), np.array(count)


def generate(n_lines: int, n_drugs: int, seed: int, out: Path, chunk_lines: int = 1_000_000,
             icd_path: str | None = None, row_group: int = 1_000_000, history: bool = False) -> dict:
    t0 = time.perf_counter()
    cat = build_catalogue(n_drugs, seed)
    pools = Pools(cat)
    pop = Population(n_lines, seed, history)
    by_cat, icd_source = load_icd(icd_path)
    st = Static(cat, pools, pop, icd_arrays(by_cat))
    out.parent.mkdir(parents=True, exist_ok=True)
    offsets = {"enc": 0, "rx": 0, "line": 0}
    tmp = out.with_suffix(out.suffix + ".tmp")
    with pq.ParquetWriter(tmp, SCHEMA, compression="snappy") as writer:
        done, chunk = 0, 0
        while done < n_lines:
            n = min(chunk_lines, n_lines - done)
            rng = np.random.default_rng([seed, 100, chunk])
            hrng = np.random.default_rng([seed, 200, chunk]) if history else None
            table = make_chunk(n, cat, pools, pop, st, rng, offsets, hrng)
            writer.write_table(table, row_group_size=row_group)
            done += n
            chunk += 1
    tmp.replace(out)
    secs = time.perf_counter() - t0
    return {"script": "gen_claims", "rows": n_lines, "drugs": n_drugs, "products": cat.n_products, "seed": seed,
            "encounters": offsets["enc"], "prescriptions": offsets["rx"], "seconds": round(secs, 2),
            "lines_per_s": round(n_lines / secs), "bytes": out.stat().st_size, "history": history,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "icd_source": icd_source,
            "out": str(out)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="claim lines to write (default 1,000,000)")
    ap.add_argument("--drugs", type=int, default=20_000, help="generic drugs in the catalogue (default 20,000)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    ap.add_argument("-o", "--out", type=Path, default=Path("benches/out/claims.parquet"), help="Parquet file to write")
    ap.add_argument("--chunk-lines", type=int, default=1_000_000, help="lines generated per batch (memory knob)")
    ap.add_argument("--row-group", type=int, default=1_000_000, help="Parquet row-group size")
    ap.add_argument("--icd", help="ICD-10 CSV (diag_code,diag_name); default: the shared national list when "
                    "present, else benches/icd10_sample.csv")
    ap.add_argument("--history", action="store_true",
                    help="patient histories for the cross-line benchmark (see above); default output unchanged")
    ap.add_argument("--make-icd-sample", action="store_true",
                    help="(maintenance) rewrite benches/icd10_sample.csv from the shared national list and exit")
    a = ap.parse_args(argv)
    if a.make_icd_sample:
        print(json.dumps({"script": "gen_claims", "icd_sample_rows": write_icd_sample()}))
        return
    print(json.dumps(generate(a.lines, a.drugs, a.seed, a.out, a.chunk_lines, a.icd, a.row_group, a.history),
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
