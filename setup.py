"""Build of nclab's one compiled module; everything else is in pyproject.toml.

``nclab.metrics._ckernels`` (the dense metrics engine's kernels, plain C, no dependencies) is
optional: where no C compiler is available the install goes on and nclab uses its NumPy engine,
which computes the same numbers (``nclab.metrics.engine_info()`` tells which one runs).
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fno-math-errno", "-ffp-contract=off", "-Wno-psabi"]
setup(
    ext_modules=[
        Extension("nclab.metrics._ckernels", ["src/nclab/metrics/_ckernels.c"], extra_compile_args=flags,
                  optional=True),
    ]
)
