"""The inline screener's decision kernel for the usual cross-line rules, Cython or the Python twin, chosen like
the other kernels (``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

from . import choose, crossdecide_twin

try:
    from . import _crossdecide
except ImportError:  # not built: the twin gives the same answers
    _crossdecide = None


def backend(name: str | None = None):
    return choose(_crossdecide, crossdecide_twin, "crossdecide", name)
