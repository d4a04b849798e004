"""Build the Cython kernels: every ``machaon/**/_*.pyx`` becomes an extension module."""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

_HERE = os.path.dirname(os.path.abspath(__file__))


def _extensions() -> list[Extension]:
    exts = []
    # MACHAON_EXT=machaon/control builds only the kernels under that folder (handy while
    # several people work on different kernels at once); unset builds all of them.
    only = os.environ.get("MACHAON_EXT", "")
    for pyx in sorted(glob.glob(os.path.join("machaon", "**", "_*.pyx"), recursive=True)):
        if only and not pyx.startswith(only):
            continue
        module = os.path.splitext(pyx)[0].replace(os.sep, ".")
        exts.append(
            Extension(
                module,
                [pyx],
                include_dirs=[np.get_include()],
                extra_compile_args=["-O3", "-fno-math-errno"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        nthreads=2,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    )
)
