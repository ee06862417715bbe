"""The inline screener's kernels, Cython or the Python twin, chosen like the other kernels
(``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

from . import choose, inline_twin

try:
    from . import _inline
except ImportError:  # not built: the twin gives the same answers
    _inline = None


def backend(name: str | None = None):
    return choose(_inline, inline_twin, "inline", name)
