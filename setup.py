"""Build script: maps the three top-level folders into the ``claimaudit`` namespace and builds the
Cython kernels (engine/kernels/*.pyx) when there are any."""
import os
from glob import glob

from setuptools import setup

PACKAGES = {"claimaudit.dsl": "dsl", "claimaudit.engine": "engine", "claimaudit.connectors": "connectors"}


def extensions():
    sources = sorted(glob("engine/kernels/*.pyx"))
    only = os.environ.get("CLAIMAUDIT_BUILD_ONLY")  # e.g. "_inline": rebuild one kernel module while others are edited
    if only:
        sources = [s for s in sources if os.path.basename(s)[:-4] in only.split(",")]
    if not sources:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension
    import numpy
    # -ffp-contract=off: no fused multiply-add, so float results match numpy's and Python's to the bit
    exts = [Extension("claimaudit.engine.kernels." + s.split("/")[-1][:-4], [s], include_dirs=[numpy.get_include()],
                      extra_compile_args=["-O3", "-ffp-contract=off"]) for s in sources]
    # Cython finds a module's own .pxd by its package path (claimaudit/engine/kernels/_native.pxd), but the
    # folders here are mapped into the namespace: give it that layout under build/.
    import shutil
    include = os.path.join("build", "cython_include")
    target = os.path.join(include, "claimaudit", "engine", "kernels")
    os.makedirs(target, exist_ok=True)
    for pxd in sorted(glob("engine/kernels/*.pxd")):
        shutil.copy2(pxd, os.path.join(target, os.path.basename(pxd)))
    return cythonize(exts, language_level=3, include_path=[include],
                     compiler_directives={"boundscheck": False, "wraparound": False})


PACKAGES["claimaudit.engine.kernels"] = "engine/kernels"

setup(
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"claimaudit.dsl": ["*.lark"], "claimaudit.engine.kernels": ["*.pxd", "*.pyx"]},
    ext_modules=extensions(),
)
