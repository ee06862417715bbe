"""Build script: maps the three top-level folders into the ``claimaudit`` namespace and builds the
Cython kernels (engine/kernels/*.pyx) when there are any."""
from glob import glob

from setuptools import setup

PACKAGES = {"claimaudit.dsl": "dsl", "claimaudit.engine": "engine", "claimaudit.connectors": "connectors"}


def extensions():
    sources = sorted(glob("engine/kernels/*.pyx"))
    if not sources:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension
    exts = [Extension("claimaudit.engine.kernels." + s.split("/")[-1][:-4], [s]) for s in sources]
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


setup(
    packages=list(PACKAGES) + ["claimaudit.engine.kernels"] if glob("engine/kernels/__init__.py") else list(PACKAGES),
    package_dir={**PACKAGES, "claimaudit.engine.kernels": "engine/kernels"},
    package_data={"claimaudit.dsl": ["*.lark"]},
    ext_modules=extensions(),
)
