"""validate_dataset: one streaming pass over every file of a dataset, producing a DatasetReport.

One pass does everything (structure, format, duplicates, PII, token counts, split counts) so that a
multi-GB upload is read exactly once, in bounded memory. The user's objects are only ever read; anything
derived (the redacted copy) is written under the artifacts root.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import orjson

from trainforge.catalog import base_modality
from trainforge.contracts import DataFormat, DataIssue, DatasetReport, PiiFinding, SplitStats, TokenStats
from trainforge.data.dedup import Deduplicator
from trainforge.data.fast import FAST_FORMATS, decode_block
from trainforge.data.fingerprint import fingerprints
from trainforge.data.formats import CHECKERS, detect_format, set_field, text_fields, texts
from trainforge.data.pii import find_pii, redact
from trainforge.data.reader import (
    TEXT_SUFFIXES,
    BudgetExceeded,
    CorruptInput,
    Line,
    LineSpan,
    RawSource,
    iter_blocks,
    iter_lines,
    open_text_stream,
    paragraphs,
    utf8_error,
)
from trainforge.data.redaction import RedactedCopies
from trainforge.data.split import validation_mask
from trainforge.data.tokens import TokenCounter
from trainforge.media.checks import MEDIA_FORMATS, MediaChecker, format_refusal
from trainforge.media.manifest import MediaSeen
from trainforge.media.references import is_media_file
from trainforge.spec import DataLimits, FormatChoice, JobSpec, PiiPolicy
from trainforge.store import ObjectStore

#: how many records ``format: auto`` looks at (the first ones of the first block that has any)
DETECT_SAMPLE = 64
#: valid records the per-line path hands on together (fingerprints are computed a batch at a time)
_ACCEPT_BATCH = 512


@dataclass(frozen=True)
class ValidationOptions:
    format: FormatChoice = "auto"
    limits: DataLimits = field(default_factory=lambda: DataLimits())
    pii: PiiPolicy = "report"
    near_duplicates: bool = True
    near_duplicate_threshold: float = 0.85
    #: how many examples of each error code the report keeps (the counts are always complete)
    max_errors_per_code: int = 20
    #: None: no split (the spec has a validation file)
    validation_fraction: float | None = None
    split_seed: int = 0
    tokenizer_file: Path | None = None
    max_seq_len: int = 1024
    #: pii == "redact": input URI -> where the redacted copy of its records goes (under the artifacts root)
    redact_into: dict[str, str] = field(default_factory=dict)
    #: the base model's modality ("text", "speech", "vision-text"): data of another one is refused; None: any
    modality: str | None = None

    @classmethod
    def from_spec(cls, spec: JobSpec, **overrides: Any) -> ValidationOptions:
        data = spec.data
        options = cls(
            format=data.format,
            limits=data.limits,
            pii=data.pii,
            near_duplicate_threshold=data.near_duplicate_threshold,
            validation_fraction=None if data.validation else data.validation_fraction,
            split_seed=data.split_seed,
            max_seq_len=spec.hyperparameters.max_seq_len,
            modality=base_modality(spec.base_model),
        )
        return replace(options, **overrides)


class _HashingReader(io.RawIOBase):
    """Passes reads through while hashing and counting the raw bytes (the object's sha256 for lineage)."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self.source = RawSource(source)
        self.limit = limit
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        filled = self.source.readinto(buffer)
        self.count += filled
        if self.count > self.limit:
            raise BudgetExceeded(self.count)
        self.sha.update(memoryview(buffer)[:filled])
        return filled


@dataclass
class _Run:
    """Mutable state of one validation pass."""

    options: ValidationOptions
    format: DataFormat | None = None
    format_detected: bool = False
    records: int = 0
    valid: int = 0
    bytes_read: int = 0
    errors: list[DataIssue] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    pii_counts: Counter[str] = field(default_factory=Counter)
    pii_findings: list[PiiFinding] = field(default_factory=list)
    #: line number of every valid record, and the index of each file's first one (8 bytes per record)
    lines: array[int] = field(default_factory=lambda: array("q"))
    file_starts: list[int] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    #: speech: seconds of audio in the valid records; multimodal: their images
    audio_seconds: float = 0.0
    images: int = 0
    #: the media the valid records name, each at the version read, and the duplicate audio among them
    media: MediaSeen = field(default_factory=MediaSeen)

    def issue(self, file: str, line: int | None, path: str, code: str, message: str) -> None:
        self.error_counts[code] += 1
        if self.error_counts[code] <= self.options.max_errors_per_code:
            self.errors.append(DataIssue(file=file, line=line, field=path, code=code, message=message))

    def location(self, index: int) -> tuple[int, int]:
        """(file index, line) of the valid record ``index``."""
        return bisect_right(self.file_starts, index) - 1, self.lines[index]


_ACTIONS: dict[str, Literal["reported", "redacted", "rejected"]] = {
    "report": "reported",
    "redact": "redacted",
    "reject": "rejected",
}


def _parse(line: Line, name: str, run: _Run) -> Any:
    """The JSON value on a line, or None after recording why it is not one."""
    try:
        return orjson.loads(line.data)
    except orjson.JSONDecodeError as exc:
        bad = utf8_error(line.data)
        if bad is not None:
            position, reason = bad
            run.issue(
                name,
                line.number,
                "",
                "invalid_utf8",
                f"invalid UTF-8 at byte {line.offset + position} of the file (column {position + 1}): {reason}",
            )
        else:
            run.issue(name, line.number, "", "invalid_json", f"not valid JSON: {exc}")
        return None


def _too_long(line: Line, name: str, run: _Run) -> None:
    limit = run.options.limits.max_line_bytes
    run.issue(name, line.number, "", "line_too_long", f"line is longer than max_line_bytes={limit}")


def _json_records(lines: Iterable[Line], name: str, run: _Run) -> Iterator[tuple[int, Any]]:
    for line in lines:
        if line.too_long:
            _too_long(line, name, run)
            continue
        if not line.data.strip():
            continue
        record = _parse(line, name, run)
        if record is None:
            continue
        if not isinstance(record, dict):
            run.issue(
                name, line.number, "$", "not_an_object", f"each line must be a JSON object, got {type(record).__name__}"
            )
            continue
        yield line.number, record


def _text_records(stream: Any, name: str, run: _Run) -> Iterator[tuple[int, Any]]:
    """Plain text for continued pretraining: one document per blank-line-separated paragraph."""
    limit = run.options.limits.max_line_bytes

    def good_lines() -> Iterator[tuple[int, str]]:
        for line in iter_lines(stream, limit):
            if line.too_long:
                _too_long(line, name, run)
                continue
            bad = utf8_error(line.data)
            if bad is not None:
                run.issue(
                    name,
                    line.number,
                    "",
                    "invalid_utf8",
                    f"invalid UTF-8 at byte {line.offset + bad[0]} of the file (column {bad[0] + 1}): {bad[1]}",
                )
                continue
            yield line.number, line.data.decode("utf-8")

    for start, text in paragraphs(good_lines(), limit):
        yield start, {"text": text}


def _with_detected_format(records: Iterator[tuple[int, Any]], run: _Run) -> Iterator[tuple[int, Any]]:
    """Peek at the first records to settle ``format: auto``; then replay them and continue."""
    if run.format is not None:
        yield from records
        return
    sample = []
    for item in records:
        sample.append(item)
        if len(sample) >= DETECT_SAMPLE:
            break
    fmt, why = detect_format(record for _, record in sample)
    if fmt is not None:
        run.format, run.format_detected = fmt, True
        run.warnings.append(why)
    yield from sample
    yield from records


@dataclass
class _Derived:
    """What the pass builds from the valid records besides the run's counts: duplicate fingerprints,
    token counts, and (``pii: redact`` with destinations) the redacted copies."""

    dedup: Deduplicator
    tokens: TokenCounter | None
    redaction: RedactedCopies | None
    #: the media records name (speech, multimodal), read through the dataset's store
    media: MediaChecker | None = None

    def finish_media(self, run: _Run) -> None:
        """The media checker's totals and notes into the pass's state (the report's, or a shard's)."""
        if self.media is not None and run.format in MEDIA_FORMATS:
            run.audio_seconds += self.media.audio_seconds
            run.images += self.media.images
            run.media = self.media.seen
            run.warnings += self.media.summary()


def _accept(
    file_index: int,
    name: str,
    numbers: Iterable[int],
    batch: list[list[str]],
    fields: Callable[[int], Iterable[tuple[str, str]]],
    run: _Run,
    derived: _Derived,
    records: list[dict[str, Any]] | None = None,
) -> None:
    """Everything that follows from valid records (their line ``numbers`` and texts): fingerprints, token
    counts, PII findings and, when redacting, the redacted copy. A batch at a time, so the per-record cost
    is a few list comprehensions; ``fields(i)`` gives record i's (json_path, text) pairs. Redaction edits
    ``records``, the parsed objects: only the per-line path has them, which is why it runs whenever a
    redaction is on."""
    while len(run.file_starts) <= file_index:
        run.file_starts.append(run.valid)
    first = len(run.lines)
    run.valid += len(batch)
    run.lines.extend(numbers)
    prints = fingerprints(batch, derived.dedup.lsh, derived.dedup.next_record)
    derived.dedup.extend(prints.digests, prints.band_keys)
    if derived.tokens is not None:
        for values in batch:
            derived.tokens.add(values)
    redaction = derived.redaction
    if redaction is not None:
        assert records is not None, "a redacting pass takes the per-line path"
    for index in np.flatnonzero(prints.triggers).tolist():
        number = run.lines[first + index]
        for path, text in fields(index):
            findings = find_pii(text)
            if not findings:
                continue
            action = _ACTIONS[run.options.pii]
            for kind, _, _ in findings:
                run.pii_counts[kind] += 1
                if len(run.pii_findings) < 100:
                    run.pii_findings.append(PiiFinding(file=name, line=number, field=path, kind=kind, action=action))
            if redaction is not None and records is not None:
                set_field(records[index], path, redact(text, findings))
    if redaction is not None and records is not None:
        for record in records:
            redaction.write(record)


@dataclass(frozen=True, slots=True)
class ValidationProgress:
    """How far a validation has got, as its ``progress`` callback hears it (after a block of lines, a
    file, or a shard; never per record): records checked and bytes of the dataset's objects read so far,
    out of the bytes of all its objects. At the end ``records`` and ``bytes`` are the report's ``records``
    and ``bytes_read``; ``bytes`` reaches ``total_bytes`` unless an object was not read (``file_too_large``)
    or a limit stopped the pass."""

    records: int
    bytes: int
    total_bytes: int


def validate_dataset(
    uris: list[str],
    store: ObjectStore,
    options: ValidationOptions = ValidationOptions(),
    progress: Callable[[ValidationProgress], None] | None = None,
) -> DatasetReport:
    """Validate every object in ``uris`` (files, or prefixes expanded to their objects) as one dataset.
    ``progress`` hears how far it got after each block of lines and each file."""
    with no_cycle_collection():
        return _validate_dataset(uris, store, options, progress)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Validation allocates millions of short-lived containers (records, their texts) that form no
    reference cycles; the cyclic collector would walk them every few hundred allocations (~5% of the time).
    Reference counting still frees everything as it goes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _derived(options: ValidationOptions, first_record: int = 0, store: ObjectStore | None = None) -> _Derived:
    redacting = options.pii == "redact" and bool(options.redact_into)
    return _Derived(
        dedup=Deduplicator(options.near_duplicate_threshold, near=options.near_duplicates, first_record=first_record),
        tokens=TokenCounter.from_file(options.tokenizer_file, options.max_seq_len) if options.tokenizer_file else None,
        redaction=RedactedCopies(options.redact_into) if redacting else None,
        media=MediaChecker(store, modality=options.modality) if store is not None else None,
    )


def _validate_dataset(
    uris: list[str],
    store: ObjectStore,
    options: ValidationOptions,
    progress: Callable[[ValidationProgress], None] | None,
) -> DatasetReport:
    run = _Run(options=options, format=None if options.format == "auto" else options.format)
    derived = _derived(options, store=store)
    files = [(uri, info) for uri in uris for info in store.list(uri) if not is_media_file(info.uri)]
    names = [info.uri for _, info in files]
    total = sum(info.size for _, info in files)
    # the file loop reports the dataset's bytes read so far; the records are the run's count at that moment
    read: Callable[[int], None] | None = None
    if progress is not None:
        read = lambda done: progress(ValidationProgress(run.records, done, total))  # noqa: E731
    for file_index, (uri, info) in enumerate(files):
        if derived.redaction is not None:
            derived.redaction.start(uri)
        _validate_file(file_index, info.uri, info.size, store, run, derived, read)
        if run.records >= options.limits.max_records:
            break
    tokens = derived.tokens.stats() if derived.tokens is not None else None
    redacted = derived.redaction.finish() if derived.redaction is not None else []
    derived.finish_media(run)
    return _report(run, uris, names, derived.dedup, tokens, redacted)


def _validate_span(
    file_index: int, uri: str, start: int, end: int, store: ObjectStore, run: _Run, derived: _Derived
) -> int:
    """The lines of a plain JSON-lines object that start in bytes [start, end) (a shard of it, see
    ``shards.py``); returns how many lines that is. Line numbers in ``run`` count from the span's first."""
    source = LineSpan(store.open(uri, max(start - 1, 0)), start, end)
    try:
        stream = io.BufferedReader(source, buffer_size=1 << 16)
        _check_blocks(file_index, uri, stream, run, derived, lambda: None, offset=source.first)
        source.drain()
    finally:
        run.bytes_read += source.count
    return source.lines


def _validate_file(
    file_index: int,
    uri: str,
    size: int,
    store: ObjectStore,
    run: _Run,
    derived: _Derived,
    progress: Callable[[int], None] | None,
) -> None:
    limits = run.options.limits
    if size > limits.max_file_bytes:
        run.issue(uri, None, "", "file_too_large", f"{size} bytes is over max_file_bytes={limits.max_file_bytes}")
        return
    lower = uri.lower()
    is_text = lower.endswith(TEXT_SUFFIXES)
    if is_text and run.format not in (None, "text"):
        run.issue(uri, None, "", "format_mismatch", f"a plain-text file cannot hold {run.format} records; use JSONL")
        return
    if is_text:
        run.format, run.format_detected = "text", run.options.format == "auto"
    source = _HashingReader(store.open(uri), limits.max_file_bytes)
    try:
        stream, _ = open_text_stream(source, lower, limits.max_decompressed_bytes)  # type: ignore[arg-type]
        if is_text:
            _check_records(file_index, uri, _text_records(stream, uri, run), run, derived)
        else:
            done = run.bytes_read
            _check_blocks(
                file_index, uri, stream, run, derived, lambda: progress(done + source.count) if progress else None
            )
    except BudgetExceeded:
        run.issue(
            uri,
            None,
            "",
            "decompressed_too_large",
            f"decompresses past max_decompressed_bytes={limits.max_decompressed_bytes} (a gzip bomb?); stopped reading",
        )
    except CorruptInput as exc:
        run.issue(uri, None, "", "corrupt_gzip", str(exc))
    finally:
        run.bytes_read += source.count
        run.sha256[uri] = source.sha.hexdigest()
        if progress is not None:
            progress(run.bytes_read)


def _check_blocks(
    file_index: int, uri: str, stream: Any, run: _Run, derived: _Derived, progress: Callable[[], None], offset: int = 0
) -> None:
    """JSON lines a block at a time: the fast path (``fast.py``) where it vouches for the whole block, the
    per-line path where it does not (and before the format is known, and when redacting). ``stream`` starts
    at byte ``offset`` of the object."""
    for block in iter_blocks(stream, run.options.limits.max_line_bytes, offset):
        fast = FAST_FORMATS.get(run.format) if run.format is not None and derived.redaction is None else None
        decoded = decode_block(block, fast) if fast is not None else None
        if fast is None or decoded is None:
            _check_records(file_index, uri, _json_records(block.lines(), uri, run), run, derived)
        else:
            accepted = decoded[: max(run.options.limits.max_records - run.records, 0)]
            run.records += len(accepted)
            numbers = range(block.number, block.number + len(accepted))
            _accept(file_index, uri, numbers, accepted, partial(fast.fields, accepted), run, derived)
            if len(accepted) < len(decoded):
                _count(uri, block.number + len(accepted), run)  # says "too many records"
                return
            if block.overlong is not None:
                _too_long(block.overlong, uri, run)
        progress()
        if run.records > run.options.limits.max_records:
            return


def _count(uri: str, number: int, run: _Run) -> bool:
    """Count one more record; False (after saying so) once past max_records."""
    run.records += 1
    if run.records <= run.options.limits.max_records:
        return True
    limit = run.options.limits.max_records
    run.issue(uri, number, "", "too_many_records", f"more than max_records={limit}; the rest was not read")
    return False


def _check_records(file_index: int, uri: str, records: Iterator[tuple[int, Any]], run: _Run, derived: _Derived) -> None:
    """The per-line path: each parsed record through its format's checker, the valid ones accepted in
    batches."""
    numbers: list[int] = []
    valid: list[dict[str, Any]] = []

    def accept() -> None:
        fmt = run.format
        assert fmt is not None
        batch = [texts(record, fmt) for record in valid]
        fields = partial(_record_fields, valid, fmt)
        _accept(file_index, uri, numbers, batch, fields, run, derived, valid)
        numbers.clear()
        valid.clear()  # _accept is done with them: the redacted copy is written

    for number, record in _with_detected_format(records, run):
        if not _count(uri, number, run):
            break
        if run.format is None:
            run.issue(
                uri,
                number,
                "$",
                "unknown_format",
                "cannot tell the format: expected keys such as messages, prompt/completion, text or chosen/rejected",
            )
            continue
        problems = CHECKERS[run.format](record)
        if not problems and derived.media is not None:
            problems = derived.media.check(uri, number, record, run.format)
        for path, code, message in problems:
            run.issue(uri, number, path, code, message)
        if not problems:
            numbers.append(number)
            valid.append(record)
            if len(valid) >= _ACCEPT_BATCH:
                accept()
    if valid:
        accept()


def _record_fields(records: list[dict[str, Any]], fmt: DataFormat, index: int) -> Iterator[tuple[str, str]]:
    return text_fields(records[index], fmt)


def _report(
    run: _Run,
    uris: list[str],
    names: list[str],
    dedup: Deduplicator,
    token_stats: TokenStats | None,
    redacted_uris: list[str],
) -> DatasetReport:
    """The report of a finished pass, whole or merged from shards (``partial.py``): the dataset-level
    issues, duplicates resolved over every record, the split decided on the whole set."""
    if not names:
        run.issue(", ".join(uris), None, "", "no_files", "no data files found at this location")
    elif run.records == 0 and not run.error_counts:
        run.issue(names[0], None, "", "no_records", "the dataset holds no records")
    refusal = format_refusal(run.format, run.options.modality) if names and run.format else None
    if refusal is not None:
        run.issue(names[0], None, "data.format", "format_not_for_base_model", refusal)
    duplicates = dedup.finish()
    exact = sum(1 for dup in duplicates if dup.exact)
    examples = []
    for dup in duplicates[: run.options.max_errors_per_code]:
        file_index, line = run.location(dup.index)
        first_file, first_line = run.location(dup.first)
        kind = "exact_duplicate" if dup.exact else "near_duplicate"
        where = f"line {first_line}" + ("" if first_file == file_index else f" of {names[first_file]}")
        examples.append(
            DataIssue(
                file=names[file_index], line=line, field="$", code=kind, message=f"{kind.replace('_', ' ')} of {where}"
            )
        )
    if duplicates:
        run.warnings.append(
            f"{exact} exact and {len(duplicates) - exact} near duplicates (kept; remove them for a cleaner model)"
        )
    split = None
    if run.options.validation_fraction is not None:
        held_out = int(validation_mask(dedup.digests(), run.options.split_seed, run.options.validation_fraction).sum())
        split = SplitStats(
            seed=run.options.split_seed,
            validation_fraction=run.options.validation_fraction,
            train_examples=run.valid - held_out,
            validation_examples=held_out,
        )
    rejected_pii = run.options.pii == "reject" and bool(run.pii_counts)
    return DatasetReport(
        ok=not run.error_counts and not rejected_pii,
        files=names,
        format=run.format,
        format_detected=run.format_detected,
        bytes_read=run.bytes_read,
        records=run.records,
        valid_records=run.valid,
        errors=run.errors,
        error_counts=dict(run.error_counts),
        warnings=run.warnings + run.media.summary() + (["PII found and pii: reject is set"] if rejected_pii else []),
        exact_duplicates=exact,
        near_duplicates=len(duplicates) - exact,
        duplicate_examples=examples,
        pii_policy=run.options.pii,
        pii_counts=dict(run.pii_counts),
        pii_findings=run.pii_findings,
        token_stats=token_stats,
        split=split,
        sha256=run.sha256,
        redacted_uris=redacted_uris,
        audio_hours=round(run.audio_seconds / 3600, 6) if run.format == "speech" else None,
        images=run.images if run.format == "multimodal" else None,
        media=list(run.media.objects.values()),
    )
