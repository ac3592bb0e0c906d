"""Virtualenvs built once per machine from a requirement set, cached by its hash and shared.

A venv is keyed by the Python version, its sorted requirements and the layers under it; it is built under
an exclusive lock (two processes never build the same one) and marked ``COMPLETE`` with what it holds and
how long it took, so an interrupted build is rebuilt rather than used. A venv may sit on another (a
``.pth`` line adds the lower venv's site-packages, and chains through its own), so a framework that takes
minutes to install is installed once and the requirements of each script go on top of it.

Local custom jobs run in these (:mod:`trainforge.custom.runner`); the SageMaker twin's image venvs are
built by the same functions.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
COMPLETE = "COMPLETE"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / PYTHON / "site-packages"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive across processes, for as long as the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_checked(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(
            f"{what} failed ({' '.join(command[:6])} ...):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def new_venv(venv: Path, below: Path | None) -> None:
    """An empty venv (no pip of its own: pip runs from outside with ``--python``) over ``below``."""
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], f"creating {venv}")
    if below is not None:  # site.addsitedir also reads the lower venv's own .pth files, so layers chain
        line = f"import site; site.addsitedir({str(site_packages(below))!r})\n"
        (site_packages(venv) / "_trainforge_layers.pth").write_text(line)


def pip_command(venv: Path, *arguments: str) -> list[str]:
    python = str(venv / "bin" / "python")
    return [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check", "--no-input", *arguments]


def venv_key(requirements: Sequence[str], layers: Sequence[Path], identity: Sequence[str] = ()) -> str:
    parts: list[object] = [PYTHON, sorted(requirements), [layer.name for layer in layers]]
    if identity:
        parts.append(sorted(identity))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def cached_venv(
    cache: Path,
    requirements: Sequence[str],
    layers: Sequence[Path] = (),
    options: Sequence[str] = (),
    identity: Sequence[str] = (),
) -> tuple[Path, float]:
    """The venv of ``requirements`` over ``layers`` (the venv directly below first), built if it is not in
    ``cache``; returns it and the seconds this call spent building it (0.0: found). ``options`` go to
    ``pip install`` (where it looks, e.g. a wheelhouse: not part of the key, whose path may change);
    ``identity`` names what else makes the venv what it is (the wheel files) and joins the key."""
    key = venv_key(requirements, layers, identity)
    venv = cache / key
    with locked(cache / f"{key}.lock"):
        if (venv / COMPLETE).is_file():
            return venv, 0.0
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        new_venv(venv, layers[0] if layers else None)
        if requirements:
            run_checked(
                pip_command(venv, "install", *options, *sorted(requirements)),
                f"installing {sorted(requirements)} into {venv}",
            )
        seconds = round(time.monotonic() - started, 1)
        record = {"requirements": sorted(requirements), "layered_on": [p.name for p in layers], "seconds": seconds}
        (venv / COMPLETE).write_text(json.dumps(record, indent=1))
        return venv, seconds


def default_cache() -> Path:
    """Where a machine's venvs live unless a setting says otherwise: the user's cache folder."""
    return Path.home() / ".cache" / "trainforge" / "venvs"
