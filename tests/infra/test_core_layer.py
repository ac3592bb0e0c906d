"""The Lambda layer carries the validator's compiled pass, built for the runtime's platform and loaded there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.constructs.core_layer import COMPILED_PASS, PLATFORM, PipInstall, core_wheel

#: what Lambda does with a layer: its python/ folder on sys.path of a bare interpreter (no site-packages)
RUNTIME_LIKE = """
import sys
sys.path.insert(0, sys.argv[1])
from trainforge.data.compiled import scan
from trainforge.data.fingerprint import fingerprints
assert scan is not None, "the layer fell back to the pure-Python twins"
assert scan.__file__.startswith(sys.argv[1]) and scan.__file__.endswith(".abi3.so"), scan.__file__
assert len(fingerprints([["a record", "its answer"]], (8, 16)).digests) == 1
print(scan.__file__)
"""


def test_the_project_wheel_is_tagged_for_the_lambda_platform_with_its_compiled_pass(tmp_path):
    wheel = core_wheel(tmp_path)
    assert wheel.name.startswith("trainforge-0.1.0-cp311-abi3-") and PLATFORM in wheel.name
    assert COMPILED_PASS in zipfile.ZipFile(wheel).namelist()


@pytest.mark.slow  # installs every dependency's wheel into a layer folder (~1 minute, most of it pip)
def test_the_layer_loads_the_compiled_pass_in_a_bare_interpreter(tmp_path):
    """Given the layer built for this machine's Python (the same wheel the 3.14 runtime gets: the pass is
    built against the stable ABI), when a bare interpreter imports it from the layer alone, then the compiled
    pass is taken and runs."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    PipInstall(python_version=version).try_bundle(str(tmp_path), image=None)  # type: ignore[arg-type]
    bare = Path(sys.base_prefix) / "bin" / f"python{version}"
    layer = str(tmp_path / "python")
    result = subprocess.run([str(bare), "-I", "-S", "-c", RUNTIME_LIKE, layer], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith(layer)
