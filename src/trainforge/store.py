"""ObjectStore: one interface over ``s3://`` and ``file://`` so every step runs the same in AWS and locally.

Reads are streams (a validator never holds a whole object); writes of derived objects are whole and
atomic. Nothing in TrainForge deletes or rewrites an object under the user's data root.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from trainforge.errors import UsageError


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    version_id: str | None


class ObjectStore(Protocol):
    def open(self, uri: str, start: int = 0) -> BinaryIO:
        """A readable binary stream over the object's bytes, from byte ``start`` (less than its size) on."""

    def read_bytes(self, uri: str) -> bytes:
        """The whole object: only for small objects (specs, reports)."""

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from byte ``start`` on (fewer at the object's end, none past it): one
        request for just those bytes, where a header check needs a piece of a large object."""

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def upload_file(self, path: Path, uri: str) -> None: ...

    def download_file(self, uri: str, path: Path) -> None: ...

    def copy(self, source_uri: str, target_uri: str) -> None:
        """Copy one object (a pinned version, for S3) within the store, without passing its bytes through
        this process where the store can copy server-side."""

    def head(self, uri: str) -> ObjectInfo: ...

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        """Objects under a prefix, recursively, in key order."""

    def exists(self, uri: str) -> bool: ...


def join(root: str, *parts: str) -> str:
    """Join URI path parts with exactly one '/' between them."""
    out = root.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def pin_version(uri: str, version_id: str | None) -> str:
    """The URI of one version of an object (S3 only; a local file has one version)."""
    return f"{uri}?versionId={version_id}" if version_id and uri.startswith("s3://") else uri


def open_store(uri: str) -> ObjectStore:
    """The store for a URI's scheme. Plain paths are treated as file://."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        from trainforge.aws.s3_store import S3Store

        return S3Store()
    if scheme in ("file", ""):
        from trainforge.local.file_store import FileStore

        return FileStore()
    raise UsageError(f"unsupported URI scheme '{scheme}' in {uri!r}: use s3:// or file://")


def to_uri(path_or_uri: str | Path) -> str:
    """Accept what a person types (a relative path) and return a URI."""
    text = str(path_or_uri)
    if text.startswith(("s3://", "file://")):
        return text
    return Path(text).resolve().as_uri()
