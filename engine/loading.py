"""The plan a command runs: a compiled bundle, or a rule pack compiled now, with a local profile applied.

The CLI prints the problems (engine/cli.py); the worker processes of a parallel audit (engine/partitioned.py)
load the same plan from the same path without printing, since the parent has already printed them.
"""
from __future__ import annotations

from claimaudit.dsl.diagnostics import Diagnostic, render
from claimaudit.dsl.ruleset import Ruleset, load_ruleset


class PlanError(Exception):
    """Rules that cannot be run: the text to print, and whether it is errors in the rules themselves (the
    CLI's exit status 1, as ``check`` gives) rather than a bad bundle or profile (status 2)."""

    def __init__(self, text: str, rule_errors: bool = False):
        super().__init__(text, rule_errors)  # both in args: a worker's error pickles back whole
        self.text, self.rule_errors = text, rule_errors

    def __str__(self):
        return self.text


def load_plan(path: str, profile: str | None = None, warn=None):
    """A compiled bundle, or the ruleset under ``path`` compiled now (with the local profile applied).
    ``warn`` receives the ruleset's warnings; errors raise PlanError."""
    from .bundle import BundleError, load_bundle, looks_like_bundle
    from .plan import build_plan
    if looks_like_bundle(path):
        try:
            plan = load_bundle(path)
        except BundleError as e:
            raise PlanError(f"error: {e}") from None
        if profile is not None:
            profile_on_bundle(plan.ruleset, profile)
        return plan
    return build_plan(load_rules(path, profile, warn))


def load_rules(path: str, profile: str | None = None, warn=None) -> Ruleset:
    """The checked ruleset under ``path``; ``warn`` receives its diagnostics, errors raise PlanError."""
    rs = load_ruleset(path, profile)
    if rs.diagnostics and warn is not None:
        warn(rs.render_diagnostics())
    if not rs.ok:
        raise PlanError(f"{len(rs.errors)} error(s) in {path}; fix them first (claimaudit check {path})",
                        rule_errors=True)
    return rs


def profile_on_bundle(rs: Ruleset, profile: str) -> None:
    """A bundle's rules are compiled: a profile may mark findings and change stages or severities, but
    its settings need the rule source."""
    from claimaudit.dsl.profile import load_profile
    from claimaudit.dsl.profile_apply import apply_profile
    prof, diags = load_profile(profile)
    if prof is not None and prof.settings:
        diags.append(Diagnostic("bad_profile", f"{profile} sets {', '.join(sorted(prof.settings))}: settings are "
                                "compiled into a bundle; use the rule pack (or compile with the profile)", None))
    if prof is not None:
        apply_profile(rs, prof)
        diags += [d for d in rs.diagnostics if d.code == "bad_profile"]
    if any(d.is_error for d in diags):
        raise PlanError("\n".join(render(d, {}) for d in diags))
