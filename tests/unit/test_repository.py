"""Repository checks a reviewer would otherwise make by hand: lint, types, docs that match the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def test_ruff_lint_and_format():
    paths = ["src", "tests", "functions", "infra", "benchmarks"]
    assert subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=ROOT, capture_output=True).returncode == 0
    assert (
        subprocess.run([str(BIN / "ruff"), "format", "--check", *paths], cwd=ROOT, capture_output=True).returncode == 0
    )


def test_mypy_on_the_library():
    result = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def _emitted_codes() -> set[str]:
    """Every error code the validator can emit: a snake_case literal followed by its message literal."""
    codes: set[str] = set()
    for module in ("data/formats.py", "data/validation.py", *(f"media/{name}" for name in MEDIA_MODULES)):
        source = (ROOT / "src/trainforge" / module).read_text()
        codes |= set(re.findall(r'"([a-z]+(?:_[a-z0-9]+)+)",\s*f?"', source))
    return codes


#: the modules whose checks word the speech and multimodal records' errors
MEDIA_MODULES = ("records.py", "checks.py", "decode.py", "headers.py", "references.py")


def test_every_data_error_code_is_documented():
    codes = _emitted_codes()
    assert {
        "invalid_json",
        "roles_not_alternating",
        "decompressed_too_large",
        "unknown_field",
    } <= codes  # the scan itself works
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", (ROOT / "docs/data-formats.md").read_text(), flags=re.M))
    assert codes <= documented, f"undocumented: {sorted(codes - documented)}"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert f"\n{command}\n" in readme
