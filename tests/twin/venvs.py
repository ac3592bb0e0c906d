"""Virtualenvs that stand in for our images: exactly the packages an image's Dockerfile installs, so a
dependency missing from an image's extras fails the test that runs it.

Two layers, as a Docker build has them:

- **Dependencies**, built once per machine and cached under ``.twin/venvs/<key>`` (gitignored) by the
  library's venv cache (``trainforge.custom.venvs``, which local custom jobs use too): what the
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

import hashlib
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.twin.dockerfile import Recipe
from tests.twin.images import Image
from trainforge.custom.venvs import cached_venv, new_venv, pip_command, run_checked

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
        venv, seconds = cached_venv(self.cache, sorted(wanted), below)
        self.timings[venv.name] = seconds or self.timings.get(venv.name, 0.0)
        return [venv, *below]

    def _project_venv(self, image: Image, layers: list[Path]) -> Path:
        """A thin venv over ``layers`` with the project's wheel installed, as the Dockerfile installs it."""
        name = hashlib.sha256(f"{image.dockerfile}|{image.context}".encode()).hexdigest()[:12]
        venv = self.session / f"venv-{name}"
        new_venv(venv, layers[0] if layers else None)
        if image.recipe.installs_project:
            started = time.monotonic()
            wheel = self._project_wheel(image)
            install = pip_command(venv, "install", "--no-deps", "--no-index", "-q", str(wheel))
            run_checked(install, f"installing {wheel.name}")
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
        run_checked([*command, str(stage)], f"building the project wheel from {stage}")
        return sorted(wheels.glob("*.whl"))[-1]
