"""Hot loops of the batch executor. Each kernel has a Cython implementation (``_native``) and a
pure-Python twin (``twin``) with the same signature; ``CLAIMAUDIT_KERNELS=python`` selects the
twin, ``cython`` (the default when the extension is built) the compiled one. Tests run both and
check they agree.
"""
from __future__ import annotations

import os

from . import twin

try:
    from . import _native
except ImportError:  # not built (e.g. no C compiler): the twin still gives the same answers
    _native = None

NAMES = ("age_years", "prefix_any", "member", "run_family", "take", "dict_codes", "blank_text", "floor_days", "ages",
         "lookup2", "ratio", "expand_pairs")


def backend(name: str | None = None):
    """The kernel module for ``name`` ('cython' or 'python'), or the one the environment selects."""
    name = name or os.environ.get("CLAIMAUDIT_KERNELS", "cython")
    if name == "python":
        return twin
    if name == "cython":
        if _native is None:
            if os.environ.get("CLAIMAUDIT_KERNELS") == "cython":
                raise RuntimeError("CLAIMAUDIT_KERNELS=cython but the compiled kernels are not built "
                                   "(pip install -e . needs Cython and a C compiler)")
            return twin
        return _native
    raise ValueError(f"CLAIMAUDIT_KERNELS must be 'cython' or 'python', not {name!r}")


def choose(compiled, python_twin, what: str, name: str | None = None):
    """The compiled module (None when not built) or its Python twin, as ``CLAIMAUDIT_KERNELS`` or ``name``
    selects; asking for Cython explicitly when it is not built is an error, not a silent twin."""
    name = name or os.environ.get("CLAIMAUDIT_KERNELS", "cython")
    if name == "python" or compiled is None:
        if name == "cython" and os.environ.get("CLAIMAUDIT_KERNELS") == "cython" and compiled is None:
            raise RuntimeError(f"CLAIMAUDIT_KERNELS=cython but the compiled {what} kernels are not built")
        return python_twin
    return compiled


def available() -> tuple:
    return ("python",) if _native is None else ("python", "cython")
