"""Synthetic rule corpus: the same drug knowledge written two ways.

A fixed seed gives a reproducible catalogue of N drugs with national-looking drug codes
(generic-name code ``X`` + 9 characters, e.g. ``XB01ACA056``; a full 23-character code appends
dosage form, specification, packaging and manufacturer, e.g. ``XB01ACA056B002020101763``). Each
drug carries one line-level restriction of one of four shapes:

* ``sex``        限性别使用            ``gend != "1"`` (rule-level ``effective 2024-01-01``)
* ``age``        儿童禁用              ``age_years < 18``
* ``dose``       超说明书日剂量        ``daily_dose > 4 g`` (units mg, g and µg; amount pro rata)
* ``indication`` 限适应症              ``not has_diag({"I63", "I61"})`` unless the hospital approved

The knowledge is written out twice, and both forms must produce the same findings:

``individual/drugs.rules``
    one rule per drug, keyed on the drug-code prefix (``med_list_codg startswith "XB01ACA056"``),
    constants written in the rule, the knowledge point given with ``basis "…" source "…"`` and the
    constraint text written literally into the message;
``table/tables.rules`` + ``table/knowledge/*.csv``
    four knowledge tables (prefix match on the generic-name code) and four table-driven rules
    (``lookup k = TABLE[med_list_codg]``) whose messages take the same text from the ``text`` column.

Rule names are the same per shape in both forms (they appear in "insufficient data" messages);
only rule codes differ.

Usage::

    python benches/rules_corpus.py --drugs 20000 --seed 20261122 --out benches/out/corpus
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DRUGS = 20_000
DEFAULT_SEED = 20261122

SHAPES = ("sex", "age", "dose", "indication")
SHAPE_WEIGHTS = (0.15, 0.25, 0.30, 0.30)
SHAPE_LETTER = {"sex": "S", "age": "A", "dose": "D", "indication": "I"}
POINT_PREFIX = {"sex": "SEX", "age": "AGE", "dose": "DOSE", "indication": "IND"}

# Same per shape in both forms: an insufficient-data finding quotes the rule name.
RULE_NAMES = {"sex": "药品区分性别使用", "age": "儿童禁用药品", "dose": "超说明书日剂量", "indication": "药品限适应症"}
RULE_CLASS = {"sex": "药品区分性别使用", "age": "儿童禁用", "dose": "超说明书用量", "indication": "药品限适应症"}
RESULT = {"sex": ("明确", "拦截"), "age": ("明确", "拦截"), "dose": ("可疑", "警示"), "indication": ("可疑", "警示")}
SEX_EFFECTIVE = "2024-01-01"
TABLE_OF = {"sex": "drug_sex", "age": "drug_age_min", "dose": "drug_daily_dose", "indication": "drug_indication"}
RULESET_HEADER = '''ruleset "{name}" {{
  version     "2026.11"
  authority   "claimaudit 基准（虚构数据）"
  description "{description}"
}}
'''

# ---- catalogue ingredients ---------------------------------------------------------------------

_ATC_GROUPS = "ABCDGHJLMNPRSV"
_FORMS = (  # dosage-form code, how the catalogue name is built from the generic name
    ("A001", "{}片"), ("A009", "{}缓释片"), ("A011", "{}肠溶片"), ("E001", "{}胶囊"), ("C001", "{}颗粒"),
    ("B001", "注射用{}"), ("B002", "{}注射液"), ("D001", "{}口服溶液"), ("F002", "{}滴眼液"), ("G001", "{}软膏"),
)
_SYLLABLES = ("阿", "莫", "西", "头", "孢", "洛", "沙", "替", "尼", "普", "利", "美", "拉", "奥", "氮", "左", "氟",
              "达", "格", "列", "吡", "嗪", "地", "塞", "卡", "维", "贝", "特", "非", "瑞", "舒", "巴", "克", "多",
              "帕", "诺", "昔", "布", "氯", "丙", "依", "泊", "康", "恩", "曲", "伐", "米", "索", "罗", "哌", "唑",
              "硝", "苯", "甲", "乙", "环", "丁", "那", "雷", "奈")
_STEMS = ("沙星", "西林", "他汀", "洛尔", "地平", "普利", "沙坦", "替丁", "拉唑", "格列汀", "霉素", "韦", "单抗",
          "替尼", "米松", "卡因", "帕胺", "西泮", "噻嗪", "洛芬", "司琼", "前列素", "肝素", "曲坦", "唑仑", "莫司")
_DIAGNOSES = (  # ICD-10 category, what the indication text calls it
    ("I63", "脑梗死"), ("I61", "脑出血"), ("I21", "急性心肌梗死"), ("I50", "心力衰竭"), ("I10", "原发性高血压"),
    ("E10", "1型糖尿病"), ("E11", "2型糖尿病"), ("E78", "高脂血症"), ("J18", "肺炎"), ("J44", "慢性阻塞性肺疾病"),
    ("J45", "哮喘"), ("A15", "肺结核"), ("B18", "慢性病毒性肝炎"), ("C16", "胃恶性肿瘤"), ("C34", "肺恶性肿瘤"),
    ("C50", "乳腺恶性肿瘤"), ("C61", "前列腺恶性肿瘤"), ("D50", "缺铁性贫血"), ("F20", "精神分裂症"),
    ("F32", "抑郁发作"), ("G40", "癫痫"), ("G20", "帕金森病"), ("K21", "胃食管反流病"), ("K25", "胃溃疡"),
    ("M05", "类风湿关节炎"), ("M81", "骨质疏松"), ("N18", "慢性肾脏病"), ("L40", "银屑病"), ("H35", "视网膜病变"),
    ("O24", "妊娠期糖尿病"),
)
_DIAG_NAME = dict(_DIAGNOSES)
_MIN_AGES = (18, 18, 18, 18, 16, 14, 12, 12, 8, 6, 3, 2)
# (unit as written in rules and tables, unit as written in messages, values)
_DOSES = (
    ("mg", "mg", ("10", "20", "40", "60", "80", "100", "150", "200", "300", "400", "500", "600", "900", "1200",
                  "1500", "2000", "2.5", "7.5")),
    ("g", "g", ("0.5", "1", "1.5", "2", "3", "4", "6", "8", "12", "16")),
    ("µg", "µg", ("25", "50", "100", "125", "200", "250", "400", "500", "800", "1000")),
)
_DOSE_UNIT_WEIGHTS = (0.5, 0.3, 0.2)
_UNIT_FACTOR_MG = {"mg": 1.0, "g": 1e3, "µg": 1e-3}
_SOURCES = (
    "国家医保药品目录限定支付范围（虚构，基准用） 第{n}批",
    "药品说明书（虚构，基准用） 第{n}批",
    "省医保局审核规则知识库（虚构，基准用） 第{n}批",
)


@dataclass(frozen=True)
class Drug:
    """One catalogue entry and its restriction (the knowledge point)."""

    index: int
    code: str  # generic-name code: 'X' + 9 characters
    name: str  # generic name
    forms: tuple  # ((dosage-form code, catalogue-name pattern), ...) this drug comes in
    shape: str  # sex | age | dose | indication
    text: str  # the constraint as written in the source
    source: str
    point_id: str
    gend: str | None = None
    min_age: int | None = None
    dose_value: str | None = None  # number as written, e.g. "1.5"
    dose_unit: str | None = None  # mg | g | µg
    dose_bare: bool = False  # the table cell is a bare number (mg is the column's default unit)
    diag_prefixes: tuple = ()
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def gend_name(self) -> str | None:
        return {"1": "男性", "2": "女性"}.get(self.gend)

    @property
    def max_daily_mg(self) -> float | None:
        """The dose limit in mg, computed the way the rule language converts units."""
        if self.dose_value is None:
            return None
        return float(self.dose_value) * _UNIT_FACTOR_MG[self.dose_unit]

    def full_code(self, rng: random.Random, form: int | None = None) -> str:
        """A 23-character national code of one product of this drug."""
        form_code = self.forms[rng.randrange(len(self.forms)) if form is None else form][0]
        return f"{self.code}{form_code}{rng.randint(1, 12):02d}{rng.randint(1, 6):02d}{rng.randint(1, 99999):05d}"

    def catalogue_name(self, full_code: str) -> str:
        pattern = dict(self.forms).get(full_code[10:14], "{}")
        return pattern.format(self.name)


def _generic_code(rng: random.Random) -> str:
    """'X' + ATC level-4 code (B01AC) + generic serial (A056)."""
    return ("X" + rng.choice(_ATC_GROUPS) + f"{rng.randint(1, 16):02d}" + rng.choice("ABCDEFGHJ")
            + rng.choice("ABCDEFGHJKLMNPQRSTUVWX") + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + f"{rng.randint(1, 999):03d}")


def _drug_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) + rng.choice(_STEMS)


def generate_drugs(n: int = DEFAULT_DRUGS, seed: int = DEFAULT_SEED) -> list[Drug]:
    """``n`` drugs with distinct generic-name codes and names, reproducible from ``seed``."""
    rng = random.Random(seed)
    codes: set[str] = set()
    names: set[str] = set()
    drugs = []
    for i in range(n):
        code = _generic_code(rng)
        while code in codes:
            code = _generic_code(rng)
        codes.add(code)
        name = _drug_name(rng)
        while name in names:
            name = _drug_name(rng)
        names.add(name)
        forms = tuple(rng.sample(_FORMS, rng.randint(1, 3)))
        shape = rng.choices(SHAPES, SHAPE_WEIGHTS)[0]
        source = rng.choice(_SOURCES).format(n=rng.randint(1, 12))
        point_id = f"{POINT_PREFIX[shape]}-{i + 1:06d}"
        kw: dict = {}
        if shape == "sex":
            kw["gend"] = "1" if rng.random() < 0.55 else "2"
            text = f"{name}：限{'男性' if kw['gend'] == '1' else '女性'}使用"
        elif shape == "age":
            kw["min_age"] = rng.choice(_MIN_AGES)
            text = f"{name}：{kw['min_age']}岁以下儿童禁用"
        elif shape == "dose":
            unit, shown, values = rng.choices(_DOSES, _DOSE_UNIT_WEIGHTS)[0]
            kw["dose_value"], kw["dose_unit"] = rng.choice(values), unit
            kw["dose_bare"] = unit == "mg" and rng.random() < 0.5
            text = f"{name}：成人每日最大剂量{kw['dose_value']}{shown}"
        else:
            picks = rng.sample(_DIAGNOSES, rng.choices((1, 2, 3), (0.5, 0.35, 0.15))[0])
            kw["diag_prefixes"] = tuple(p for p, _ in picks)
            text = f"{name}：限{'、'.join(d for _, d in picks)}患者使用"
        drugs.append(Drug(i, code, name, forms, shape, text, source, point_id, **kw))
    return drugs


# ---- writing the two forms -----------------------------------------------------------------------


def _q(s: str) -> str:
    """A rule-language string literal."""
    if any(c in s for c in '"\\\n{}'):
        raise ValueError(f"text unsuitable for a literal: {s!r}")
    return f'"{s}"'


def _head(shape: str, code: str) -> list[str]:
    result, severity = RESULT[shape]
    lines = [f'rule {code} "{RULE_NAMES[shape]}" {{',
             f'  class    "{RULE_CLASS[shape]}"',
             f"  result   {result}",
             f"  severity {severity}",
             "  stages   事前, 事中, 事后"]
    if shape == "sex":
        lines.append(f"  effective {SEX_EFFECTIVE}")
    return lines


def individual_rule(d: Drug) -> str:
    """One hand-written-style rule for one drug: code prefix, constants and basis inline."""
    code = f"BX{SHAPE_LETTER[d.shape]}{d.index + 1:07d}"
    key = f"med_list_codg startswith {_q(d.code)}"
    lines = _head(d.shape, code)
    if d.shape == "sex":
        when = f'{key} and gend in {{"1", "2"}} and gend != "{d.gend}"'
        message = f"药品【{{hilist_name}}】{d.text}，患者性别与限定性别（{d.gend_name}）不符"
        amount = "inscp_scp_amt"
    elif d.shape == "age":
        when = f"{key} and age_years < {d.min_age}"
        message = f"药品【{{hilist_name}}】{d.text}，患者就诊时{{age_years}}岁"
        amount = None
    elif d.shape == "dose":
        limit = f"{d.dose_value} {d.dose_unit}"
        when = f"{key} and daily_dose > {limit}"
        message = f"药品【{{hilist_name}}】{d.text}，本次日剂量{{daily_dose}}（{{sin_dos_dscr}} {{used_frqu_dscr}}）"
        amount = f"inscp_scp_amt * (daily_dose - {limit}) / daily_dose"
    else:
        prefixes = ", ".join(_q(p) for p in d.diag_prefixes)
        when = f'{key} and not has_diag({{{prefixes}}}) and coalesce(hosp_appr_flag, "0") != "1"'
        message = f"药品【{{hilist_name}}】{d.text}，本次就诊诊断不符合限定适应症"
        amount = None
    lines.append(f"  when     {when}")
    lines.append(f"  basis    {_q(d.text)} source {_q(d.source)}")
    lines.append(f'  message  "{message}"')  # d.text was vetted by _q above
    if amount:
        lines.append(f"  amount   {amount}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_individual(drugs: list[Drug], out_dir: Path) -> Path:
    """``out_dir/drugs.rules``: a ruleset declaration and one rule per drug."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "drugs.rules"
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"# Generated by benches/rules_corpus.py: {len(drugs)} drugs, one rule each. Do not edit.\n\n")
        fh.write(RULESET_HEADER.format(name="基准规则包（逐条）", description="每个药品一条规则，常量与依据写在规则中"))
        for d in drugs:
            fh.write("\n")
            fh.write(individual_rule(d))
    return path


_TABLE_DECLS = {
    "sex": ("column gend      text", "column gend_name text"),
    "age": ("column min_age   number",),
    "dose": ("column max_daily_dose quantity mg   # a bare number is mg",),
    "indication": ("column diag_prefixes list text",),
}

_TABLE_RULES = {
    "sex": ("  scope    gend in {\"1\", \"2\"}",
            "  when     gend != k.gend",
            "  message  \"药品【{hilist_name}】{k.text}，患者性别与限定性别（{k.gend_name}）不符\"",
            "  amount   inscp_scp_amt"),
    "age": ("  when     age_years < k.min_age",
            "  message  \"药品【{hilist_name}】{k.text}，患者就诊时{age_years}岁\""),
    "dose": ("  when     daily_dose > k.max_daily_dose",
             "  message  \"药品【{hilist_name}】{k.text}，本次日剂量{daily_dose}（{sin_dos_dscr} {used_frqu_dscr}）\"",
             "  amount   inscp_scp_amt * (daily_dose - k.max_daily_dose) / daily_dose"),
    "indication": ("  when     not has_diag(k.diag_prefixes) and coalesce(hosp_appr_flag, \"0\") != \"1\"",
                   "  message  \"药品【{hilist_name}】{k.text}，本次就诊诊断不符合限定适应症\""),
}


def _table_row(d: Drug) -> dict:
    row = {"point_id": d.point_id, "code": d.code, "drug_name": d.name}
    if d.shape == "sex":
        row.update(gend=d.gend, gend_name=d.gend_name)
    elif d.shape == "age":
        row["min_age"] = str(d.min_age)
    elif d.shape == "dose":
        row["max_daily_dose"] = d.dose_value if d.dose_bare else f"{d.dose_value}{d.dose_unit}"
    else:
        row["diag_prefixes"] = ";".join(d.diag_prefixes)
    row.update(text=d.text, source=d.source)
    return row


def table_rules_text() -> str:
    parts = [f"# Generated by benches/rules_corpus.py: the drug knowledge as tables. Do not edit.\n\n",
             RULESET_HEADER.format(name="基准规则包（知识表）", description="同一知识写成知识表与表驱动规则")]
    for shape in SHAPES:
        name = TABLE_OF[shape]
        cols = ["  key    code      text match prefix",
                "  column point_id  text role id",
                "  column drug_name text",
                *("  " + c for c in _TABLE_DECLS[shape]),
                "  column text      text role text",
                "  column source    text role source"]
        parts.append(f'\ntable {name} from "knowledge/{name}.csv" {{\n' + "\n".join(cols) + "\n}\n")
    for shape in SHAPES:
        lines = _head(shape, f"TB_{shape.upper()}")
        lines.append(f"  lookup   k = {TABLE_OF[shape]}[med_list_codg]")
        lines.extend(_TABLE_RULES[shape])
        lines.append("}")
        parts.append("\n" + "\n".join(lines) + "\n")
    return "".join(parts)


def write_table(drugs: list[Drug], out_dir: Path) -> Path:
    """``out_dir/tables.rules`` and ``out_dir/knowledge/<table>.csv``."""
    out_dir = Path(out_dir)
    (out_dir / "knowledge").mkdir(parents=True, exist_ok=True)
    for shape in SHAPES:
        rows = [_table_row(d) for d in drugs if d.shape == shape]
        header = ["point_id", "code", "drug_name",
                  *{"sex": ["gend", "gend_name"], "age": ["min_age"], "dose": ["max_daily_dose"],
                    "indication": ["diag_prefixes"]}[shape], "text", "source"]
        with (out_dir / "knowledge" / f"{TABLE_OF[shape]}.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, header, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    path = out_dir / "tables.rules"
    path.write_text(table_rules_text(), encoding="utf-8")
    return path


def write_corpus(out_dir: Path, n: int = DEFAULT_DRUGS, seed: int = DEFAULT_SEED,
                 forms: tuple = ("individual", "table")) -> tuple[list[Drug], dict[str, Path]]:
    """Generate ``n`` drugs and write the requested forms under ``out_dir/<form>/``."""
    drugs = generate_drugs(n, seed)
    out_dir = Path(out_dir)
    written = {}
    if "individual" in forms:
        written["individual"] = write_individual(drugs, out_dir / "individual")
    if "table" in forms:
        written["table"] = write_table(drugs, out_dir / "table")
    return drugs, written


# ---- claim lines that exercise the corpus ----------------------------------------------------------

_FREQUENCIES = (("qd", 1), ("bid", 2), ("tid", 3), ("qid", 4), ("每日3次", 3), ("q8h", 3), ("q12h", 2), ("prn", None))
_DOSE_FACTORS = (0.25, 0.5, 0.9, 1.0, 1.1, 1.5, 3.0)
_GENDERS = ("1", "2", "1", "2", "1", "2", "0", "9", None)


def _fmt_num(v: float) -> str:
    """Four significant digits, never in exponent notation (prescriptions do not write 1e+04)."""
    return ("%.6f" % float(f"{v:.4g}")).rstrip("0").rstrip(".")


def dose_text(mg: float, unit: str) -> str:
    """A single-dose description of ``mg`` milligrams written in ``unit``."""
    return _fmt_num(mg / {"mg": 1.0, "g": 1e3, "µg": 1e-3, "ug": 1e-3, "mcg": 1e-3}[unit]) + unit


def claim_line(drug: Drug | None, line_id: str, choice: dict) -> dict:
    """A claim line (dict over CLAIM_FIELDS) aimed at ``drug`` (None: a code no rule knows).

    ``choice`` holds the random decisions (so a seeded ``random`` and Hypothesis can both drive it):
    gend, age (years, or None for a missing birth date), age_extra_days, service (date), product (int),
    freq (index into _FREQUENCIES), dose_factor, dose_unit, dose_kind (ok | count | missing),
    diag_kind (match | other | none), diag_pick (int), appr (bool), cnt, pric, inscp_missing (bool),
    other_code (str, used when drug is None).
    """
    from claimaudit.dsl.schema import CLAIM_FIELDS
    line = {name: None for name in CLAIM_FIELDS}
    service: dt.date = choice["service"]
    line.update(feedetl_sn=line_id, mdtrt_id=f"M{line_id}", psn_no=f"P{line_id}", gend=choice["gend"],
                fee_ocur_time=dt.datetime.combine(service, dt.time(9, 30)), med_type="11", insutype="310")
    line["begntime"] = line["fee_ocur_time"]
    if choice["age"] is not None:
        years = choice["age"]
        try:
            birth = service.replace(year=service.year - years)
        except ValueError:  # 29 February
            birth = service.replace(year=service.year - years, day=28)
        line["brdy"] = birth + dt.timedelta(days=choice["age_extra_days"])
        if line["brdy"] > service:
            line["brdy"] = service
    if drug is not None:
        rng = random.Random(choice["product"])
        line["med_list_codg"] = drug.full_code(rng)
        line["hilist_name"] = drug.catalogue_name(line["med_list_codg"])
    else:
        line["med_list_codg"] = choice["other_code"]
        line["hilist_name"] = "其他药品"
    freq_text, per_day = _FREQUENCIES[choice["freq"]]
    line["used_frqu_dscr"] = freq_text
    if choice["dose_kind"] == "count":
        line["sin_dos_dscr"] = "2片"
    elif choice["dose_kind"] == "ok":
        limit = drug.max_daily_mg if drug is not None and drug.max_daily_mg else 1000.0
        line["sin_dos_dscr"] = dose_text(limit * choice["dose_factor"] / (per_day or 1), choice["dose_unit"])
    if choice["diag_kind"] != "none":
        if choice["diag_kind"] == "match" and drug is not None and drug.diag_prefixes:
            main = drug.diag_prefixes[choice["diag_pick"] % len(drug.diag_prefixes)] + ".900"
        else:
            main = _DIAGNOSES[choice["diag_pick"] % len(_DIAGNOSES)][0] + ".x01"
        line["dscg_maindiag_code"] = main
        line["diag_codes"] = (main, "Z00.000")
    if choice["appr"]:
        line["hosp_appr_flag"] = "1"
    line["cnt"], line["pric"] = float(choice["cnt"]), float(choice["pric"])
    line["det_item_fee_sumamt"] = round(line["cnt"] * line["pric"], 2)
    line["inscp_scp_amt"] = None if choice["inscp_missing"] else line["det_item_fee_sumamt"]
    line["prd_days"] = 7.0
    return line


def random_choice(rng: random.Random, drug: Drug | None) -> dict:
    """Random decisions for ``claim_line``, biased towards each restriction's boundary."""
    if drug is not None and drug.shape == "age" and rng.random() < 0.8:
        age = max(0, drug.min_age + rng.randint(-3, 2))
    else:
        age = rng.choice((0, 1, 5, 11, 17, 18, 30, 45, 60, 75, 90))
    return {
        "gend": rng.choice(_GENDERS),
        "age": None if rng.random() < 0.04 else age,
        "age_extra_days": rng.choice((0, 0, 1, 100, 300, 364)),
        "service": dt.date(2023, 6, 1) + dt.timedelta(days=rng.randint(0, 940)),
        "product": rng.randrange(1 << 30),
        "freq": rng.randrange(len(_FREQUENCIES)),
        "dose_factor": rng.choice(_DOSE_FACTORS),
        "dose_unit": rng.choice(("mg", "g", "µg", "ug", "mcg")),
        "dose_kind": rng.choices(("ok", "count", "missing"), (0.85, 0.07, 0.08))[0],
        "diag_kind": rng.choices(("match", "other", "none"), (0.45, 0.48, 0.07))[0],
        "diag_pick": rng.randrange(100),
        "appr": rng.random() < 0.1,
        "cnt": rng.randint(1, 12),
        "pric": round(rng.uniform(0.5, 400.0), 2),
        "inscp_missing": rng.random() < 0.03,
        "other_code": _other_code(rng),
    }


def _other_code(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice("0123456789") for _ in range(15))  # a service item
    return "Z" + _generic_code(rng)[1:] + "A001010100001"  # a patent medicine no rule covers


def sample_lines(drugs: list[Drug], n: int, seed: int = 1, hit_rate: float = 0.88) -> list[dict]:
    """``n`` claim lines; about ``hit_rate`` of them carry a corpus drug's code."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        drug = rng.choice(drugs) if rng.random() < hit_rate else None
        out.append(claim_line(drug, f"L{i:06d}", random_choice(rng, drug)))
    return out


# ---- CLI --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Writes OUT/individual/drugs.rules and OUT/table/{tables.rules,knowledge/*.csv}.")
    p.add_argument("--drugs", "-n", type=int, default=DEFAULT_DRUGS, help=f"number of drugs (default {DEFAULT_DRUGS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--out", "-o", type=Path, default=Path(__file__).resolve().parent / "out" / "corpus",
                   help="output directory (default benches/out/corpus)")
    p.add_argument("--form", choices=("both", "individual", "table"), default="both")
    args = p.parse_args(argv)
    forms = ("individual", "table") if args.form == "both" else (args.form,)
    drugs, written = write_corpus(args.out, args.drugs, args.seed, forms)
    counts = {s: sum(d.shape == s for d in drugs) for s in SHAPES}
    print(f"{len(drugs)} drugs ({', '.join(f'{s} {c}' for s, c in counts.items())})")
    for form, path in written.items():
        print(f"{form}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
