"""The inline screener's per-request index for cross-line rules, Cython or the Python twin, chosen like the
other kernels (``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

from . import choose, cross_twin

try:
    from . import _cross
except ImportError:  # not built: the twin gives the same answers
    _cross = None


def backend(name: str | None = None):
    return choose(_cross, cross_twin, "cross", name)
