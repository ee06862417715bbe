"""A local profile's marks on a finding: the profile in force, shadow mode, and the exemption whose
scope covers it. The reference and every compiled renderer apply this one function to the findings
they make, so executors agree on profiles (tests/test_profiles.py checks it)."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from .findings import Finding


def mark_with_profile(f: Finding, profile) -> Finding:
    override = profile.rules.get(f.rule_code)
    exemption = next((e for e in profile.exemptions if _covers(e, f)), None)
    return replace(f, profile=profile.label, shadow=bool(override and override.shadow),
                   exemption=exemption.describe() if exemption else None)


_FIELDS = {"rule": lambda f: f.rule_code, "point_id": lambda f: f.knowledge.point_id if f.knowledge else None,
           "fixmedins_code": lambda f: f.fixmedins_code, "bilg_dept_codg": lambda f: f.bilg_dept_codg,
           "bilg_dr_codg": lambda f: f.bilg_dr_codg, "psn_no": lambda f: f.psn_no}


def _covers(exemption, f: Finding) -> bool:
    if any(_FIELDS[k](f) != v for k, v in exemption.scope):
        return False
    start, end = exemption.period
    if start is None and end is None:
        return True
    if f.service_date is None:  # a period cannot be shown to cover an undated line
        return False
    day = dt.date.fromisoformat(f.service_date)
    return (start is None or day >= start) and (end is None or day <= end)
