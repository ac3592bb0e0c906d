"""The one compiled module, ``trainforge.data._scan``: optional, so an install without a C compiler still
works (on the slower pure-Python twins). TRAINFORGE_PURE_PYTHON=1 skips it, as the Lambda layer build does:
that wheel targets another Python than the one building it."""

import os

from setuptools import Extension, setup

extensions = []
if os.environ.get("TRAINFORGE_PURE_PYTHON") != "1":
    extensions.append(
        Extension(
            "trainforge.data._scan",
            ["src/trainforge/data/_scan.c"],
            extra_compile_args=["-O3"],
            optional=True,
            py_limited_api=True,  # _scan.c keeps to the stable ABI of 3.11+: one .abi3.so for every later Python
        )
    )

setup(ext_modules=extensions, options={"bdist_wheel": {"py_limited_api": "cp311"}} if extensions else {})
