"""What the twin reads from a Dockerfile: the base image, the environment, what is copied in, what pip
installs and the entry point. Only the instructions our images use are understood; any other RUN is
ignored (apt packages, venv creation: the twin's virtualenv takes their place), and a Dockerfile the twin
cannot read (several stages, an install it cannot place) is refused with what it could not read, so an
image is never run from a guess.

Reference: https://docs.docker.com/reference/dockerfile/
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class DockerfileError(ValueError):
    """The Dockerfile uses something the twin cannot emulate; the message names the file and line."""


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]  # relative to the build context
    destination: PurePosixPath  # absolute, WORKDIR applied


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install``: the project (``.`` under WORKDIR) with its extras, and named requirements."""

    project_extras: tuple[str, ...] | None  # None: the project is not installed by this command
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    path: Path
    base: str
    env: dict[str, str]
    workdir: PurePosixPath
    copies: tuple[Copy, ...]
    installs: tuple[PipInstall, ...]
    entrypoint: tuple[str, ...]

    @property
    def project_extras(self) -> tuple[str, ...]:
        """The extras of every ``pip install .[...]`` of the project, in order, without repeats."""
        seen: dict[str, None] = {}
        for install in self.installs:
            for extra in install.project_extras or ():
                seen.setdefault(extra, None)
        return tuple(seen)

    @property
    def installs_project(self) -> bool:
        return any(install.project_extras is not None for install in self.installs)

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(req for install in self.installs for req in install.requirements)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) with backslash continuations joined and comments dropped."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append((start, buffer + stripped))
        buffer = ""
    if buffer:
        lines.append((start, buffer))
    return lines


def _substitute(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, "")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, value)


def _env_pairs(arguments: str) -> dict[str, str]:
    """``ENV A=1 B="two words"`` or the legacy ``ENV A value with spaces``."""
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


_PIP = re.compile(r"(?:^|&&|;|\|\|)\s*(?:\S*/)?(?:python3?(?:\.\d+)? -m )?pip3? install ([^&;|]*)")


def _pip_installs(command: str, where: str) -> list[PipInstall]:
    installs = []
    for match in _PIP.finditer(command):
        extras: tuple[str, ...] | None = None
        requirements: list[str] = []
        for token in shlex.split(match.group(1)):
            if token.startswith("-"):
                if token in ("-r", "--requirement", "-e", "--editable", "-c", "--constraint"):
                    raise DockerfileError(f"{where}: pip install {token} is not emulated by the twin")
                continue
            project = re.fullmatch(r"\.(?:\[([\w,\- ]*)\])?", token)
            if project:
                extras = tuple(e.strip() for e in (project.group(1) or "").split(",") if e.strip())
            elif token.startswith(("/", "./")):
                raise DockerfileError(f"{where}: pip install of a path other than '.' ({token}) is not emulated")
            else:
                requirements.append(token)
        installs.append(PipInstall(extras, tuple(requirements)))
    return installs


def parse_dockerfile(path: Path) -> Recipe:
    """The recipe of a single-stage Dockerfile (ARG defaults substituted, WORKDIR applied)."""
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    base = ""
    workdir = PurePosixPath("/")
    copies: list[Copy] = []
    installs: list[PipInstall] = []
    entrypoint: tuple[str, ...] = ()
    for number, line in _logical_lines(path.read_text()):
        where = f"{path}:{number}"
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args.setdefault(name.strip(), default.strip().strip('"'))
        elif keyword == "FROM":
            if base:
                raise DockerfileError(f"{where}: multi-stage Dockerfiles are not emulated by the twin")
            base = _substitute(arguments.split(" AS ")[0].split(" as ")[0].strip(), args)
        elif keyword == "ENV":
            for name, value in _env_pairs(arguments).items():
                env[name] = _substitute(value, {**args, **env})
        elif keyword == "WORKDIR":
            workdir = workdir / _substitute(arguments, {**args, **env})
        elif keyword in ("COPY", "ADD"):
            tokens = [t for t in shlex.split(arguments) if not t.startswith("--")]
            if len(tokens) < 2:
                raise DockerfileError(f"{where}: {keyword} needs a source and a destination")
            copies.append(Copy(tuple(tokens[:-1]), workdir / tokens[-1]))
        elif keyword == "RUN":
            for install in _pip_installs(arguments, where):
                if install.project_extras is not None and not any(c.destination == workdir for c in copies):
                    raise DockerfileError(f"{where}: pip install . but nothing was copied to {workdir}")
                installs.append(install)
        elif keyword == "ENTRYPOINT":
            entrypoint = tuple(json.loads(arguments)) if arguments.startswith("[") else ("/bin/sh", "-c", arguments)
    if not base:
        raise DockerfileError(f"{path}: no FROM instruction")
    return Recipe(path, base, env, workdir, tuple(copies), tuple(installs), entrypoint)
