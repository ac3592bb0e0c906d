"""Redacted copies: with ``pii: redact`` the valid records, their PII replaced, are written under the
artifacts root (the user's objects are never modified), one copy per destination.

Each input of a validation pass names its destination, so that the training data and a held-out
validation file become separate copies: training reads only its own, and evaluation reads the redacted
validation file, never the raw one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from trainforge.store import open_store


class RedactedCopies:
    """Streams each destination's records to a temporary file; ``finish`` uploads them."""

    def __init__(self, destinations: Mapping[str, str]) -> None:
        #: input URI (as the pass was given it) -> destination URI
        self.destinations = dict(destinations)
        self._files: dict[str, tuple[Path, IO[bytes]]] = {}
        self._current: IO[bytes] | None = None

    def start(self, input_uri: str) -> None:
        """Records written from now on belong to ``input_uri``'s destination."""
        destination = self.destinations[input_uri]
        if destination not in self._files:
            fd, name = tempfile.mkstemp(suffix=".jsonl")
            self._files[destination] = (Path(name), os.fdopen(fd, "wb"))
        self._current = self._files[destination][1]

    def write(self, record: dict[str, Any]) -> None:
        assert self._current is not None, "start() names the input first"
        self._current.write(orjson.dumps(record) + b"\n")

    def finish(self) -> list[str]:
        """Upload every copy; the destinations written, in order."""
        written = []
        for destination, (path, handle) in self._files.items():
            handle.close()
            try:
                open_store(destination).upload_file(path, destination)
            finally:
                path.unlink(missing_ok=True)
            written.append(destination)
        return written
