"""DESIGN.md §2: the modules the Lambdas ship never import torch or transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT = [
    "trainforge.contracts",
    "trainforge.errors",
    "trainforge.spec",
    "trainforge.catalog",
    "trainforge.store",
    "trainforge.settings",
    "trainforge.data",
    "trainforge.data.validation",
    "trainforge.data.report",
    "trainforge.evaluation.gate",
    "trainforge.pipeline",
    "trainforge.registry",
    "trainforge.aws",
    "trainforge.local.file_store",
    "trainforge.aws.s3_store",
]


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_no_torch(module):
    code = f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; print(heavy)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"
