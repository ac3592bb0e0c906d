"""validate_dataset: one streaming pass over every file of a dataset, producing a DatasetReport.

One pass does everything (structure, format, duplicates, PII, token counts, split counts) so that a
multi-GB upload is read exactly once, in bounded memory. The user's objects are only ever read; anything
derived (the redacted copy) is written under the artifacts root.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from trainforge.contracts import DataFormat, DataIssue, DatasetReport, PiiFinding, SplitStats
from trainforge.data.dedup import Deduplicator
from trainforge.data.fingerprint import example_digest, normalise
from trainforge.data.formats import CHECKERS, detect_format, set_field, text_fields, texts
from trainforge.data.pii import find_pii, may_contain_pii, redact
from trainforge.data.reader import (
    TEXT_SUFFIXES,
    BudgetExceeded,
    CorruptInput,
    Line,
    iter_lines,
    open_text_stream,
    paragraphs,
    utf8_error,
)
from trainforge.data.split import assign_split
from trainforge.data.tokens import TokenCounter
from trainforge.spec import DataLimits, FormatChoice, JobSpec, PiiPolicy
from trainforge.store import ObjectStore

_DETECT_SAMPLE = 64


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
    #: where a redacted copy goes when pii == "redact" (under the artifacts root)
    redacted_uri: str | None = None

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
        )
        return replace(options, **overrides)


class _HashingReader:
    """Passes reads through while hashing and counting the raw bytes (the object's sha256 for lineage)."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise BudgetExceeded(self.count)
        self.sha.update(data)
        return data


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
    split_counts: Counter[str] = field(default_factory=Counter)
    locations: list[tuple[int, int]] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)

    def issue(self, file: str, line: int | None, path: str, code: str, message: str) -> None:
        self.error_counts[code] += 1
        if self.error_counts[code] <= self.options.max_errors_per_code:
            self.errors.append(DataIssue(file=file, line=line, field=path, code=code, message=message))


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


def _json_records(stream: Any, name: str, run: _Run) -> Iterator[tuple[int, Any]]:
    for line in iter_lines(stream, run.options.limits.max_line_bytes):
        if line.too_long:
            run.issue(
                name,
                line.number,
                "",
                "line_too_long",
                f"line is longer than max_line_bytes={run.options.limits.max_line_bytes}",
            )
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
                run.issue(name, line.number, "", "line_too_long", f"line is longer than max_line_bytes={limit}")
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
        if len(sample) >= _DETECT_SAMPLE:
            break
    fmt, why = detect_format(record for _, record in sample)
    if fmt is not None:
        run.format, run.format_detected = fmt, True
        run.warnings.append(why)
    yield from sample
    yield from records


class _RedactedWriter:
    """Streams the redacted copy to a temporary file; uploaded under the artifacts root at the end."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(suffix=".jsonl")
        self.path = Path(name)
        self.handle = os.fdopen(fd, "wb")

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(orjson.dumps(record) + b"\n")


def _check_record(
    file_index: int, name: str, number: int, record: dict[str, Any], run: _Run, state: dict[str, Any]
) -> None:
    fmt = run.format
    assert fmt is not None
    problems = CHECKERS[fmt](record)
    if problems:
        for path, code, message in problems:
            run.issue(name, number, path, code, message)
        return
    run.valid += 1
    values = texts(record, fmt)
    joined = "\x1f".join(values)
    normal = normalise(joined)
    digest = example_digest(normal)
    state["dedup"].add(digest, normal)
    run.locations.append((file_index, number))
    if run.options.validation_fraction is not None:
        run.split_counts[assign_split(digest, run.options.split_seed, run.options.validation_fraction)] += 1
    if state["tokens"] is not None:
        state["tokens"].add(values)
    if may_contain_pii(joined):
        for path, text in text_fields(record, fmt):
            findings = find_pii(text)
            if not findings:
                continue
            action = _ACTIONS[run.options.pii]
            for kind, _, _ in findings:
                run.pii_counts[kind] += 1
                if len(run.pii_findings) < 100:
                    run.pii_findings.append(PiiFinding(file=name, line=number, field=path, kind=kind, action=action))
            if run.options.pii == "redact":
                set_field(record, path, redact(text, findings))
    if state["redacted"] is not None:
        state["redacted"].write(record)


def validate_dataset(
    uris: list[str],
    store: ObjectStore,
    options: ValidationOptions = ValidationOptions(),
    progress: Callable[[int], None] | None = None,
) -> DatasetReport:
    """Validate every object in ``uris`` (files, or prefixes expanded to their objects) as one dataset."""
    run = _Run(options=options, format=None if options.format == "auto" else options.format)
    tokens = TokenCounter.from_file(options.tokenizer_file, options.max_seq_len) if options.tokenizer_file else None
    writer = _RedactedWriter() if options.pii == "redact" and options.redacted_uri else None
    state: dict[str, Any] = {
        "dedup": Deduplicator(options.near_duplicate_threshold, near=options.near_duplicates),
        "tokens": tokens,
        "redacted": writer,
    }
    files = [info for uri in uris for info in store.list(uri)]
    names = [info.uri for info in files]
    for file_index, info in enumerate(files):
        _validate_file(file_index, info.uri, info.size, store, run, state, progress)
        if run.records >= options.limits.max_records:
            break
    if not files:
        run.issue(", ".join(uris), None, "", "no_files", "no data files found at this location")
    elif run.records == 0 and not run.error_counts:
        run.issue(names[0], None, "", "no_records", "the dataset holds no records")
    return _report(run, names, state, writer)


def _validate_file(
    file_index: int,
    uri: str,
    size: int,
    store: ObjectStore,
    run: _Run,
    state: dict[str, Any],
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
        reader = _text_records if is_text else _json_records
        seen = 0
        for number, record in _with_detected_format(reader(stream, uri, run), run):
            run.records += 1
            seen += 1
            if run.records > limits.max_records:
                run.issue(
                    uri,
                    number,
                    "",
                    "too_many_records",
                    f"more than max_records={limits.max_records}; the rest was not read",
                )
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
            _check_record(file_index, uri, number, record, run, state)
            if progress is not None and seen % 4096 == 0:
                progress(source.count)
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
            progress(source.count)


def _report(run: _Run, names: list[str], state: dict[str, Any], writer: _RedactedWriter | None) -> DatasetReport:
    duplicates = state["dedup"].finish()
    exact = sum(1 for dup in duplicates if dup.exact)
    examples = []
    for dup in duplicates[: run.options.max_errors_per_code]:
        file_index, line = run.locations[dup.index]
        first_file, first_line = run.locations[dup.first]
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
        split = SplitStats(
            seed=run.options.split_seed,
            validation_fraction=run.options.validation_fraction,
            train_examples=run.split_counts["train"],
            validation_examples=run.split_counts["validation"],
        )
    rejected_pii = run.options.pii == "reject" and bool(run.pii_counts)
    redacted_uri = None
    if writer is not None:
        writer.handle.close()
        if run.options.redacted_uri:
            from trainforge.store import open_store

            open_store(run.options.redacted_uri).upload_file(writer.path, run.options.redacted_uri)
            redacted_uri = run.options.redacted_uri
        writer.path.unlink(missing_ok=True)
    tokens = state["tokens"]
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
        warnings=run.warnings + (["PII found and pii: reject is set"] if rejected_pii else []),
        exact_duplicates=exact,
        near_duplicates=len(duplicates) - exact,
        duplicate_examples=examples,
        pii_policy=run.options.pii,
        pii_counts=dict(run.pii_counts),
        pii_findings=run.pii_findings,
        token_stats=tokens.stats() if tokens is not None else None,
        split=split,
        sha256=run.sha256,
        redacted_uri=redacted_uri,
    )
