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
    import numpy
    exts = [Extension("claimaudit.engine.kernels." + s.split("/")[-1][:-4], [s], include_dirs=[numpy.get_include()],
                      extra_compile_args=["-O3"]) for s in sources]
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


PACKAGES["claimaudit.engine.kernels"] = "engine/kernels"

setup(
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"claimaudit.dsl": ["*.lark"], "claimaudit.engine.kernels": ["*.pxd", "*.pyx"]},
    ext_modules=extensions(),
)
