"""Assembling a cross-line violation's finding, Cython or the Python twin, chosen like the other kernels
(``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

from . import choose, crossrender_twin

try:
    from . import _crossrender
except ImportError:  # not built: the twin gives the same answers
    _crossrender = None


def backend(name: str | None = None):
    return choose(_crossrender, crossrender_twin, "crossrender", name)
