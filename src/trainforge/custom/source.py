"""A custom job's source folder, packed into the run's own ``sourcedir.tar.gz``.

The pack is the run's copy: the script that trains is the one packed at Prepare, whatever happens to the
user's folder afterwards (which is only read, never changed). It is byte-for-byte reproducible (sorted
members, zeroed times and owners), so the same source packs to the same bytes. Prepare refuses, before
any compute, a source that lacks a script the spec names, and in AWS a requirements file the job could not
install: the job has no internet, so its packages come from the source's ``wheelhouse/``.

AWS's toolkit installs one requirements file, ``requirements.txt`` at the source's root, whether or not the
spec names it: so the file ``custom.requirements`` names is packed there (the user's folder keeps its
layout), and a root ``requirements.txt`` counts as declared even when the spec names none.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from trainforge.custom.script_mode import REQUIREMENTS, WHEELHOUSE
from trainforge.errors import SpecInvalid
from trainforge.spec import CustomSpec
from trainforge.store import open_store

#: a source is code and a few wheels, not data or weights (those come through the channels)
MAX_SOURCE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class PackedSource:
    archive: bytes
    files: tuple[str, ...]
    #: the file packed as the root ``requirements.txt`` the toolkit installs (a path in the source); None: none
    requirements_file: str | None
    requirements: tuple[str, ...]  # its requirement lines (options and comments left out)


def _read_source(source_uri: str) -> dict[str, bytes]:
    prefix = source_uri.rstrip("/") + "/"
    store = open_store(prefix)
    files, total = {}, 0
    for info in store.list(prefix):
        total += info.size
        if total > MAX_SOURCE_BYTES:
            raise SpecInvalid(
                f"custom.source {source_uri} holds more than {MAX_SOURCE_BYTES // 2**20} MiB: a source is code "
                "(and its wheelhouse); data comes through data.train/validation, weights through base_model"
            )
        files[info.uri[len(prefix) :]] = store.read_bytes(info.uri)
    if not files:
        raise SpecInvalid(f"custom.source: no files at {source_uri}")
    return files


def requirement_lines(text: str) -> tuple[str, ...]:
    """The requirement lines of a requirements file: comments, blank lines and pip options left out."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("-"))


def pack_source(custom: CustomSpec, source_uri: str, *, offline: bool) -> PackedSource:
    """Read and pack the source. ``offline``: the job has no internet (AWS), so requirements must be
    installable from the source's wheelhouse."""
    files = _read_source(source_uri)
    for field in ("entry_point", "evaluation_entry_point", "requirements"):
        name = getattr(custom, field)
        if name is not None and name not in files:
            raise SpecInvalid(f"custom.{field}: {name} is not in custom.source {source_uri}")
    declared = _requirements_file(custom, files, source_uri)
    requirements = requirement_lines(files[declared].decode()) if declared else ()
    wheels = [name for name in files if name.startswith(f"{WHEELHOUSE}/") and name.endswith(".whl")]
    if offline and requirements and not wheels:
        raise SpecInvalid(
            f"{_naming(custom, declared)} names {len(requirements)} package(s), but a SageMaker job has no "
            f"internet and custom.source has no {WHEELHOUSE}/ to install them from: build it beside the script "
            f"with `pip download -r {declared} -d {WHEELHOUSE} --only-binary=:all: --platform "
            "manylinux2014_x86_64 --python-version 3.12` (the container's Python), or list only what the "
            "framework container already has"
        )
    packed = (files | {REQUIREMENTS: files[declared]}) if declared else files
    return PackedSource(_archive(packed), tuple(sorted(files)), declared, requirements)


def _requirements_file(custom: CustomSpec, files: dict[str, bytes], source_uri: str) -> str | None:
    """The file the toolkit will install as the root ``requirements.txt``: the declared one, else a root one."""
    declared = custom.requirements
    if declared is None:
        return REQUIREMENTS if REQUIREMENTS in files else None
    if declared != REQUIREMENTS and REQUIREMENTS in files and files[REQUIREMENTS] != files[declared]:
        raise SpecInvalid(
            f"custom.requirements: {declared} is packed as {REQUIREMENTS} at the root of the source, the one file "
            f"the framework container installs, but custom.source {source_uri} has another {REQUIREMENTS} there: "
            f"name {REQUIREMENTS} in custom.requirements, or remove one of the two"
        )
    return declared


def _naming(custom: CustomSpec, declared: str | None) -> str:
    if custom.requirements is not None:
        return "custom.requirements"
    return f"custom.source's {declared} (the framework container installs it even when custom.requirements is unset)"


def _archive(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(files[name]), 0o644, 0
            tar.addfile(member, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def unpack_source(archive: bytes, target: Path) -> Path:
    """Unpack into ``target`` as the toolkit does into /opt/ml/code (the ``data`` filter refuses members
    that would land outside it)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(target, filter="data")
    return target
