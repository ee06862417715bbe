"""The inline screener's kernels, Cython or the Python twin, chosen like the other kernels
(``CLAIMAUDIT_KERNELS=python|cython``)."""
from __future__ import annotations

import os

from . import inline_twin

try:
    from . import _inline
except ImportError:  # not built: the twin gives the same answers
    _inline = None


def backend(name: str | None = None):
    name = name or os.environ.get("CLAIMAUDIT_KERNELS", "cython")
    if name == "python" or _inline is None:
        if name == "cython" and os.environ.get("CLAIMAUDIT_KERNELS") == "cython" and _inline is None:
            raise RuntimeError("CLAIMAUDIT_KERNELS=cython but the compiled inline kernels are not built")
        return inline_twin
    return _inline
