"""Bounded, streaming line reading: gzip with a decompression budget, a maximum line length, UTF-8 checks.

Everything here reads a fixed-size buffer at a time, so a 1 GB upload or a gzip bomb costs the same memory
as a 1 KB one.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple, cast

import numpy as np

from trainforge.data.compiled import scan

GZIP_MAGIC = b"\x1f\x8b"
#: files read as plain text (continued pretraining) rather than JSON lines
TEXT_SUFFIXES = (".txt", ".txt.gz", ".md", ".md.gz")
_CHUNK = 1 << 20
#: the buffered streams' own buffer: smaller than a block, so that reading a block goes straight from the
#: source into it (a BufferedReader copies through its buffer any read no larger than the buffer)
_BUFFER = 1 << 16


class BudgetExceeded(Exception):
    """The stream inflated past its byte budget."""


class CorruptInput(Exception):
    """The bytes cannot be decoded as what they claim to be."""


class RawSource(io.RawIOBase):
    """Adapts any object with ``read(n)`` (a file, a botocore StreamingBody) to RawIOBase; one with
    ``readinto`` (both of those) fills the caller's buffer directly, without an intermediate copy."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self._readinto = getattr(source, "readinto", None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._readinto is not None:
            return int(self._readinto(buffer) or 0)
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Gunzip(io.RawIOBase):
    """Streams the decompressed bytes of a (possibly multi-member) gzip stream, up to ``budget`` bytes."""

    def __init__(self, source: BinaryIO, budget: int) -> None:
        self.source = source
        self.budget = budget
        self.produced = 0
        self._inflater = zlib.decompressobj(wbits=31)
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._inflater.eof:  # a multi-member file: start the next member on what is left
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=31)
                self._started = False
            else:
                data = self._inflater.unconsumed_tail
            if not data:
                data = self.source.read(_CHUNK)
                if not data:
                    if self._started:
                        raise CorruptInput("the gzip stream ends in the middle of a member (truncated upload?)")
                    return 0
            self._started = True
            try:
                out = self._inflater.decompress(data, len(buffer))
            except zlib.error as exc:
                raise CorruptInput(f"not a valid gzip stream: {exc}") from exc
            if out:
                self.produced += len(out)
                if self.produced > self.budget:
                    raise BudgetExceeded(self.produced)
                buffer[: len(out)] = out
                return len(out)


class LineSpan(io.RawIOBase):
    """The lines of an object that start in bytes [start, end): a shard's share of a file, so that shards
    cut at any offsets cover every line exactly once and never split one.

    ``source`` is the object opened at ``max(start - 1, 0)``. Unless ``start`` is 0, everything up to and
    including the first newline at or after ``start - 1`` belongs to the line before (another shard's); the
    span then runs to the first newline at or after ``end - 1``, inclusive. A line longer than a whole span
    leaves it empty. ``first`` is where the span's first line starts in the object, ``count`` how many bytes
    it has delivered and ``lines`` how many lines they hold (a last line without a newline included).
    """

    def __init__(self, source: BinaryIO, start: int, end: int) -> None:
        self.source = io.BufferedReader(RawSource(source), buffer_size=_BUFFER)
        self.first = max(start - 1, 0)
        self.end = end
        self.count = 0
        self.lines = 0
        self._done = False
        self._last = b"\n"
        if start > 0:
            while True:  # skip the line that started before the span, a bounded chunk at a time
                piece = self.source.readline(_CHUNK)
                self.first += len(piece)
                if not piece or piece.endswith(b"\n"):
                    break
            self._done = not piece.endswith(b"\n") or self.first >= end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        filled = self.source.readinto(view)
        if not filled:
            self._done = True
        else:
            position = self.first + self.count
            # the last line is the one holding byte end - 1: stop after the first newline from there on
            newline = (
                bytes(view[max(self.end - 1 - position, 0) : filled]).find(b"\n")
                if position + filled >= self.end
                else -1
            )
            if newline >= 0:
                filled = max(self.end - 1 - position, 0) + newline + 1
                self._done = True
            self.lines += int(np.count_nonzero(np.frombuffer(view, dtype=np.uint8, count=filled) == 10))
            self._last = bytes(view[filled - 1 : filled])
            self.count += filled
        if self._done and self._last != b"\n":
            self.lines += 1  # a last line without its newline
            self._last = b"\n"
        return filled

    def drain(self) -> None:
        """Read to the span's end, so that ``lines`` and ``count`` are complete however far a reader got."""
        scratch = bytearray(_CHUNK)
        while self.readinto(memoryview(scratch)):
            pass


class Line(NamedTuple):
    number: int
    offset: int
    data: bytes
    too_long: bool = False


def open_text_stream(source: BinaryIO, name: str, budget: int) -> tuple[io.BufferedReader, bool]:
    """A buffered stream of the object's text bytes; gzip is detected by magic bytes as well as name."""
    buffered = io.BufferedReader(RawSource(source), buffer_size=_BUFFER)
    compressed = name.endswith(".gz") or buffered.peek(2)[:2] == GZIP_MAGIC
    if compressed:
        return cast(io.BufferedReader, io.BufferedReader(_Gunzip(buffered, budget), buffer_size=_BUFFER)), True
    return cast(io.BufferedReader, buffered), False


class Block(NamedTuple):
    """Whole lines of a stream: ``data`` starts at line ``number``, byte ``offset`` of the stream."""

    number: int
    offset: int
    #: a bytearray: read into in place, so a block costs one copy from the source, not three
    data: bytearray
    #: how many lines ``data`` holds
    line_count: int
    #: whether a line starts with whitespace (it may be blank: the fast path leaves such blocks alone)
    indented: bool
    #: a line over the limit that followed ``data``, truncated (the rest of it was skipped)
    overlong: Line | None = None

    def lines(self) -> Iterator[Line]:
        data = self.data
        start = 0
        number = self.number
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                end = len(data)
            yield Line(number, self.offset + start, bytes(data[start:end].rstrip(b"\r")))
            number += 1
            start = end + 1
        if self.overlong is not None:
            yield self.overlong


def block_bytes(max_line_bytes: int) -> int:
    """How many bytes a block of lines reads before completing its last line."""
    return min(_CHUNK, max_line_bytes)


def iter_blocks(stream: io.BufferedReader, max_line_bytes: int, offset: int = 0) -> Iterator[Block]:
    """~1 MB of whole lines at a time. No line in ``data`` is longer than ``max_line_bytes``: at most
    ``max_line_bytes`` are read before the last line is completed, and that line alone is measured; a longer
    one is cut off as ``overlong`` and the rest of it skipped without being held in memory. Whether a line is
    over the limit does not depend on where a block starts, so a shard of a file (``shards.py``: its stream
    starts at byte ``offset`` of the file, its lines numbered from 1) finds exactly what a whole pass does."""
    size = block_bytes(max_line_bytes)
    number = 1
    while True:
        data = bytearray(size)
        del data[stream.readinto(data) :]
        if not data:
            return
        if not data.endswith(b"\n"):
            data += stream.readline(max_line_bytes + 1)  # in place: a bytearray over-allocates
        last = data.rfind(b"\n", 0, len(data) - 1) + 1
        consumed = len(data)
        overlong = None
        if len(data) - last - data.endswith(b"\n") > max_line_bytes:
            if not data.endswith(b"\n"):
                while True:  # skip the rest of the over-long line
                    more = stream.readline(_CHUNK)
                    consumed += len(more)
                    if not more or more.endswith(b"\n"):
                        break
            lines_before = data.count(b"\n", 0, last)
            overlong = Line(number + lines_before, offset + last, bytes(data[last : last + 200]), too_long=True)
            del data[last:]
        line_count, indented = line_summary(data)
        block = Block(number, offset, data, line_count, indented, overlong)
        yield block
        number += block.line_count + (overlong is not None)
        offset += consumed


_JSON_SPACE = np.zeros(256, dtype=bool)
_JSON_SPACE[list(b" \t\n\r")] = True


def _line_summary(data: bytes | bytearray) -> tuple[int, bool]:
    """(lines, whether one starts with JSON whitespace); the twin of ``_scan.c``'s ``line_summary``."""
    if not data:
        return 0, False
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    if data.endswith(b"\n"):
        newlines = newlines[:-1]
    starts = np.concatenate(([0], newlines + 1))
    return len(starts), bool(_JSON_SPACE[np.frombuffer(data, dtype=np.uint8)[starts]].any())


line_summary = _line_summary if scan is None else scan.line_summary


def iter_lines(stream: io.BufferedReader, max_line_bytes: int) -> Iterator[Line]:
    """Yield lines without their newline. A line over the limit is yielded once, truncated, with
    ``too_long`` set, and the rest of it is skipped without being held in memory."""
    for block in iter_blocks(stream, max_line_bytes):
        yield from block.lines()


def utf8_error(data: bytes) -> tuple[int, str] | None:
    """(byte offset, reason) of the first invalid UTF-8 byte, or None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start, exc.reason
    return None


def paragraphs(lines: Iterable[tuple[int, str]], max_bytes: int) -> Iterator[tuple[int, str]]:
    """Plain text as documents: blank-line-separated paragraphs, each at most ``max_bytes`` long,
    with the 1-based line number where each starts."""
    current: list[str] = []
    start = 0
    size = 0
    for number, text in lines:
        if text.strip():
            if not current:
                start = number
            current.append(text)
            size += len(text)
            if size <= max_bytes:
                continue
        if current:
            yield start, "\n".join(current)
            current, size = [], 0
    if current:
        yield start, "\n".join(current)
