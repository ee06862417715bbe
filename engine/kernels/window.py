"""The range kernels of cross-line rules, Cython or the Python twin, chosen like the other kernels
(``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

import os

from . import window_twin

try:
    from . import _window
except ImportError:  # not built: the twin gives the same answers
    _window = None


def backend(name: str | None = None):
    name = name or os.environ.get("CLAIMAUDIT_KERNELS", "cython")
    if name == "python" or _window is None:
        if name == "cython" and os.environ.get("CLAIMAUDIT_KERNELS") == "cython" and _window is None:
            raise RuntimeError("CLAIMAUDIT_KERNELS=cython but the compiled window kernels are not built")
        return window_twin
    return _window
