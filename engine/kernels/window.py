"""The range kernels of cross-line rules, Cython or the Python twin, chosen like the other kernels
(``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

from . import choose, window_twin

try:
    from . import _window
except ImportError:  # not built: the twin gives the same answers
    _window = None


def backend(name: str | None = None):
    return choose(_window, window_twin, "window", name)
