"""Virtualenvs that stand in for our images: exactly the packages an image's Dockerfile installs, so a
dependency missing from an image's extras fails the test that runs it.

Two layers, as a Docker build has them:

- **Dependencies**, built once per machine and cached under ``.twin/venvs/<key>`` (gitignored): what the
  base image provides (``images.BASE_IMAGES``) plus every requirement of the extras the Dockerfile's
  ``pip install ".[...]"`` names (expanded from the copied ``pyproject.toml``), keyed by the hash of that
  requirement set and the Python version. An image whose set contains another registered image's set is
  layered on it (a ``.pth`` line adds the smaller venv's site-packages), so the GPU image's ``[serve]``
  venv adds FastAPI and uvicorn to the ``[train-core]`` + torch venv instead of installing torch twice.
- **The project**, fresh each session: the files the Dockerfile COPYs are staged into a folder, built
  into a wheel there and installed without dependencies into a thin venv over the dependency layer, like
  the Dockerfile's ``COPY`` + ``pip install .``; package data missing from the wheel goes missing here too.

Deviation: the venvs use this machine's Python (3.11), where the GPU image installs Python 3.12.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.twin.dockerfile import Recipe
from tests.twin.images import Image

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"


def project_requirements(pyproject: Path, extras: tuple[str, ...]) -> list[str]:
    """The project's dependencies plus each extra's, self-references (``name[other]``) expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = canonicalize_name(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    requirements = list(project.get("dependencies", []))
    expanded: set[str] = set()

    def expand(extra: str) -> None:
        if extra in expanded:
            return
        if extra not in optional:
            raise LookupError(f"{pyproject}: no extra {extra!r} (has: {', '.join(sorted(optional))})")
        expanded.add(extra)
        for requirement in optional[extra]:
            parsed = Requirement(requirement)
            if canonicalize_name(parsed.name) == name:
                for inner in sorted(parsed.extras):
                    expand(inner)
            else:
                requirements.append(requirement)

    for extra in extras:
        expand(extra)
    return sorted(set(requirements))


def image_requirements(image: Image) -> frozenset[str]:
    """What the image's Python has besides the project: its base image's packages and its pip installs."""
    recipe = image.recipe
    requirements = set(image.base.provides) | set(recipe.requirements)
    if recipe.installs_project:
        requirements |= set(project_requirements(image.context / "pyproject.toml", recipe.project_extras))
    return frozenset(requirements)


def layer_below(wanted: frozenset[str], known: set[frozenset[str]]) -> frozenset[str] | None:
    """The largest known requirement set strictly inside ``wanted`` (ties: the first sorted), if any."""
    subsets = sorted((s for s in known if s < wanted), key=lambda s: (-len(s), sorted(s)))
    return subsets[0] if subsets else None


def site_packages(venv: Path) -> Path:
    return venv / "lib" / PYTHON / "site-packages"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive across processes: two test sessions never build the same venv at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(
            f"{what} failed ({' '.join(command[:6])} ...):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def _new_venv(venv: Path, layers: list[Path]) -> None:
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], f"creating {venv}")
    if layers:  # site.addsitedir also reads the layer's own .pth files, so layers chain
        lines = "".join(f"import site; site.addsitedir({str(site_packages(layer))!r})\n" for layer in layers)
        (site_packages(venv) / "_twin_layers.pth").write_text(lines)


def _pip(venv: Path, *arguments: str) -> list[str]:
    python = str(venv / "bin" / "python")
    return [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check", "--no-input", *arguments]


@dataclass(frozen=True)
class Runtime:
    """How to start a process of an image: its PATH (the session venv first) and its recipe."""

    image: Image
    venv: Path
    layers: tuple[Path, ...]

    @property
    def recipe(self) -> Recipe:
        return self.image.recipe

    @property
    def path(self) -> str:
        return ":".join([str(self.venv / "bin"), *(str(layer / "bin") for layer in self.layers), SYSTEM_PATH])

    def executable(self, command: str) -> str:
        found = shutil.which(command, path=self.path)
        if found is None:
            raise FileNotFoundError(f"{command}: not found on the image's PATH ({self.image.dockerfile})")
        return found


class VenvBuilder:
    """Builds (or finds) the venvs of the registered images; one per test session (``runtime`` caches)."""

    def __init__(self, cache: Path, session: Path) -> None:
        self.cache = cache
        self.session = session
        session.mkdir(parents=True, exist_ok=True)
        #: seconds each venv took to build in this session (0.0: found in the cache)
        self.timings: dict[str, float] = {}
        self._runtimes: dict[Image, Runtime] = {}

    def runtime(self, image: Image, others: list[Image]) -> Runtime:
        """``others``: the registry's images, among which the dependency layers are chosen."""
        if image not in self._runtimes:
            layers = self._dependency_layers(image_requirements(image), {image_requirements(o) for o in others})
            self._runtimes[image] = Runtime(image, self._project_venv(image, layers), tuple(layers))
        return self._runtimes[image]

    def _dependency_layers(self, wanted: frozenset[str], known: set[frozenset[str]]) -> list[Path]:
        """The venv of ``wanted`` first, then the layers it sits on (largest known strict subset, recursively)."""
        subset = layer_below(wanted, known)
        below = self._dependency_layers(subset, known) if subset is not None else []
        key = hashlib.sha256(json.dumps([PYTHON, sorted(wanted), [p.name for p in below]]).encode()).hexdigest()[:16]
        venv = self.cache / key
        with _locked(self.cache / f"{key}.lock"):
            if not (venv / "COMPLETE").is_file():
                started = time.monotonic()
                shutil.rmtree(venv, ignore_errors=True)
                _new_venv(venv, below[:1])
                _run(_pip(venv, "install", *sorted(wanted)), f"installing {sorted(wanted)} into {venv}")
                seconds = round(time.monotonic() - started, 1)
                record = {"requirements": sorted(wanted), "layered_on": [p.name for p in below], "seconds": seconds}
                (venv / "COMPLETE").write_text(json.dumps(record, indent=1))
                self.timings[key] = seconds
            else:
                self.timings.setdefault(key, 0.0)
        return [venv, *below]

    def _project_venv(self, image: Image, layers: list[Path]) -> Path:
        """A thin venv over ``layers`` with the project's wheel installed, as the Dockerfile installs it."""
        name = hashlib.sha256(f"{image.dockerfile}|{image.context}".encode()).hexdigest()[:12]
        venv = self.session / f"venv-{name}"
        _new_venv(venv, layers[:1])
        if image.recipe.installs_project:
            started = time.monotonic()
            wheel = self._project_wheel(image)
            _run(_pip(venv, "install", "--no-deps", "--no-index", "-q", str(wheel)), f"installing {wheel.name}")
            self.timings[f"project-{name}"] = round(time.monotonic() - started, 1)
        return venv

    def _project_wheel(self, image: Image) -> Path:
        """Stage what the Dockerfile copies under WORKDIR and build its wheel there (once per session for
        Dockerfiles that copy the same files from the same context)."""
        recipe = image.recipe
        key = hashlib.sha256(repr((str(image.context), recipe.workdir, recipe.copies)).encode()).hexdigest()[:12]
        wheels = self.session / f"wheels-{key}"
        if any(wheels.glob("*.whl")):
            return sorted(wheels.glob("*.whl"))[-1]
        stage = self.session / f"context-{key}"
        shutil.rmtree(stage, ignore_errors=True)
        for copy in recipe.copies:
            if recipe.workdir not in (copy.destination, *copy.destination.parents):
                continue
            target = stage / copy.destination.relative_to(recipe.workdir)
            for source in copy.sources:
                origin = image.context / source
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                elif len(copy.sources) > 1 or copy.destination == recipe.workdir or target.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / PurePosixPath(source).name)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
        _run([*command, str(stage)], f"building the project wheel from {stage}")
        return sorted(wheels.glob("*.whl"))[-1]
