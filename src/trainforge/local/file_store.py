"""The filesystem ObjectStore behind ``file://`` URIs (local mode and tests)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from trainforge.errors import StoreError
from trainforge.store import ObjectInfo


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileStore:
    def open(self, uri: str, start: int = 0) -> BinaryIO:
        path = uri_to_path(uri)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise StoreError(f"cannot read {uri}: {exc.strerror}") from exc
        handle.seek(start)
        return handle

    def read_bytes(self, uri: str) -> bytes:
        with self.open(uri) as handle:
            return handle.read()

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        with self.open(uri, start) as handle:
            return handle.read(max(length, 0))

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        atomic_write(uri_to_path(uri), data)

    def upload_file(self, path: Path, uri: str) -> None:
        target = uri_to_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def download_file(self, uri: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(uri_to_path(uri), path)

    def copy(self, source_uri: str, target_uri: str) -> None:
        self.upload_file(uri_to_path(source_uri), target_uri)

    def head(self, uri: str) -> ObjectInfo:
        path = uri_to_path(uri)
        try:
            stat = path.stat()
        except OSError as exc:
            raise StoreError(f"cannot read {uri}: {exc.strerror}") from exc
        # The local analogue of an S3 version id: changes whenever the file is rewritten.
        return ObjectInfo(
            uri=path.resolve().as_uri(), size=stat.st_size, version_id=f"{stat.st_mtime_ns}-{stat.st_size}"
        )

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        root = uri_to_path(prefix_uri)
        if root.is_file():
            yield self.head(root.as_uri())
            return
        if not root.is_dir():
            return
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
            yield self.head(path.as_uri())

    def exists(self, uri: str) -> bool:
        return uri_to_path(uri).exists()
