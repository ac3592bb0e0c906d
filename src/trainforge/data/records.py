"""Reading the records of already-validated files, for training and evaluation (no checks repeated)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from trainforge.contracts import DataFormat
from trainforge.data.formats import detect_format
from trainforge.data.reader import TEXT_SUFFIXES, iter_lines, open_text_stream, paragraphs
from trainforge.media.references import is_media_file

_MAX_LINE = 64 * 2**20
_NO_BUDGET = 1 << 62


def data_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and not is_media_file(p.name)
    )


def iter_file(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as raw:
        stream, _ = open_text_stream(raw, path.name.lower(), _NO_BUDGET)
        if path.name.lower().endswith(TEXT_SUFFIXES):
            lines = ((line.number, line.data.decode("utf-8")) for line in iter_lines(stream, _MAX_LINE))
            for _, text in paragraphs(lines, _MAX_LINE):
                yield {"text": text}
            return
        for line in iter_lines(stream, _MAX_LINE):
            if line.data.strip():
                yield orjson.loads(line.data)


def load_records(folder: Path, fmt: str = "auto") -> tuple[DataFormat, list[dict[str, Any]]]:
    records = [record for path in data_files(folder) for record in iter_file(path)]
    if fmt != "auto":
        return fmt, records  # type: ignore[return-value]
    detected, why = detect_format(records[:64])
    if detected is None:
        raise ValueError(f"{folder}: {why}")
    return detected, records
