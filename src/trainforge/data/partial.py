"""Partial reports: what one shard's validation leaves (``validate_shard``), and the reduce that merges
them into the DatasetReport a whole pass gives (``merge_partials``).

A partial keeps everything the whole pass needs at its end, never the data: counts, the first errors of
each code and PII findings (lines counted from the shard's first line, made absolute in the merge from
the line counts of the shards before it), each valid record's line, exact digest, LSH band keys and token
count. The merge concatenates those in shard order, which is the whole pass's reading order, and hands
them to the same ``validation._report``: exact and near duplicates are resolved over every record of
every shard, and the train/validation split is decided on the merged set.

On the wire a partial is one ``.npz`` (numpy arrays plus a JSON header, no pickle): 8 bytes per record
for the digest, 8 per LSH band, 8 for the line and 4 for the token count.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson

from trainforge.contracts import DataFormat, DataIssue, DatasetReport, PiiFinding
from trainforge.data.dedup import Deduplicator
from trainforge.data.shards import RECORDS_PER_SHARD, Shard, ShardPlan
from trainforge.data.tokens import token_stats
from trainforge.data.validation import (
    ValidationOptions,
    _derived,
    _report,
    _Run,
    _validate_file,
    _validate_span,
    no_cycle_collection,
)
from trainforge.media.manifest import MediaSeen
from trainforge.store import ObjectStore, join, open_store

_EMPTY_U64 = np.empty(0, dtype=np.uint64)
#: the report keeps this many PII findings (the counts are complete); the whole pass's cap
_PII_FINDINGS = 100


@dataclass
class PartialReport:
    shard: Shard
    #: lines the shard read (a span's; an object's lines need no offset)
    lines: int = 0
    records: int = 0
    valid: int = 0
    bytes_read: int = 0
    format: DataFormat | None = None
    format_detected: bool = False
    errors: list[DataIssue] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pii_counts: dict[str, int] = field(default_factory=dict)
    pii_findings: list[PiiFinding] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    #: the redacted copy of the shard's records (``pii: redact``), under the plan's work prefix
    redacted: list[str] = field(default_factory=list)
    tokenizer: str | None = None
    #: per valid record, in order: its line, exact digest, LSH band keys and token count
    record_lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    digests: np.ndarray = field(default_factory=lambda: _EMPTY_U64)
    band_keys: np.ndarray | None = None
    token_lengths: np.ndarray | None = None
    #: the media totals of the shard's valid records (``media/checks.py``)
    audio_seconds: float = 0.0
    images: int = 0
    #: the media the shard's valid records name (versions, digests, first uses): the merge's manifest and
    #: its duplicate audio across shards
    media: MediaSeen = field(default_factory=MediaSeen)

    def to_bytes(self) -> bytes:
        header = {
            "shard": self.shard.model_dump(mode="json"),
            "lines": self.lines,
            "records": self.records,
            "valid": self.valid,
            "bytes_read": self.bytes_read,
            "format": self.format,
            "format_detected": self.format_detected,
            "errors": [issue.model_dump(mode="json") for issue in self.errors],
            "error_counts": self.error_counts,
            "warnings": self.warnings,
            "pii_counts": self.pii_counts,
            "pii_findings": [finding.model_dump(mode="json") for finding in self.pii_findings],
            "sha256": self.sha256,
            "redacted": self.redacted,
            "tokenizer": self.tokenizer,
            "audio_seconds": self.audio_seconds,
            "images": self.images,
        }
        arrays = {"header": np.frombuffer(orjson.dumps(header), dtype=np.uint8)}
        arrays |= {"record_lines": self.record_lines, "digests": self.digests}
        # after the header (``read_partial_counts`` reads only that): one entry per medium, not a few bytes
        arrays["media"] = np.frombuffer(self.media.to_json(), dtype=np.uint8)
        if self.band_keys is not None:
            arrays["band_keys"] = self.band_keys
        if self.token_lengths is not None:
            arrays["token_lengths"] = self.token_lengths
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PartialReport:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = orjson.loads(arrays["header"].tobytes())
            return cls(
                shard=Shard.model_validate(header.pop("shard")),
                errors=[DataIssue.model_validate(issue) for issue in header.pop("errors")],
                pii_findings=[PiiFinding.model_validate(finding) for finding in header.pop("pii_findings")],
                record_lines=arrays["record_lines"],
                digests=arrays["digests"],
                band_keys=arrays.get("band_keys"),
                token_lengths=arrays.get("token_lengths"),
                media=MediaSeen.from_json(arrays["media"].tobytes()),
                **header,
            )


def redacted_part_uri(work_uri: str, shard: Shard) -> str:
    return join(work_uri, "redacted", f"{shard.index:06d}.jsonl")


def validate_shard(shard: Shard, store: ObjectStore, options: ValidationOptions, work_uri: str) -> PartialReport:
    """Validate one shard with the whole pass's code, from the state the whole pass would be in there
    (``shard.format``). With ``pii: redact`` the shard's redacted records go to a part under ``work_uri``;
    the merge joins the parts into each destination."""
    with no_cycle_collection():
        return _validate_shard(shard, store, options, work_uri)


def _validate_shard(shard: Shard, store: ObjectStore, options: ValidationOptions, work_uri: str) -> PartialReport:
    if shard.kind == "digest":
        return PartialReport(shard=shard, sha256={shard.uri: _sha256(store, shard.uri)})
    if options.pii == "redact" and options.redact_into:
        options = replace(options, redact_into={shard.input_uri: redacted_part_uri(work_uri, shard)})
    run = _Run(options=options, format=shard.format, format_detected=shard.format_detected)
    derived = _derived(options, first_record=shard.index * RECORDS_PER_SHARD, store=store)
    lines = 0
    if derived.redaction is not None:
        derived.redaction.start(shard.input_uri)
    if shard.kind == "object":
        _validate_file(shard.file_index, shard.uri, shard.size, store, run, derived, None)
    else:
        lines = _validate_span(shard.file_index, shard.uri, shard.start, shard.end, store, run, derived)
    tokens = derived.tokens
    derived.finish_media(run)
    return PartialReport(
        shard=shard,
        lines=lines,
        records=run.records,
        valid=run.valid,
        bytes_read=run.bytes_read,
        format=run.format,
        format_detected=run.format_detected,
        errors=run.errors,
        error_counts=dict(run.error_counts),
        warnings=run.warnings,
        pii_counts=dict(run.pii_counts),
        pii_findings=run.pii_findings,
        sha256=run.sha256,
        redacted=derived.redaction.finish() if derived.redaction is not None else [],
        tokenizer=tokens.name if tokens is not None else None,
        record_lines=np.frombuffer(run.lines, dtype=np.int64),
        digests=derived.dedup.digests(),
        band_keys=derived.dedup.band_keys(),
        token_lengths=tokens.lengths() if tokens is not None else None,
        audio_seconds=run.audio_seconds,
        images=run.images,
        media=run.media,
    )


def _sha256(store: ObjectStore, uri: str) -> str:
    digest = hashlib.sha256()
    with store.open(uri) as body:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        while filled := body.readinto(view):  # type: ignore[attr-defined]
            digest.update(view[:filled])
    return digest.hexdigest()


def _shifted(line: int | None, offset: int) -> int | None:
    return None if line is None else line + offset


def merge_partials(plan: ShardPlan, partials: Iterable[PartialReport], options: ValidationOptions) -> DatasetReport:
    """The DatasetReport of the whole dataset from its shards' partial reports (any order: they are put in
    plan order). Equal, field for field, to ``validate_dataset`` on the same data and options (a property
    test holds it), except when a limit stops a whole pass early (``max_records``): then both reject the
    data, with different counts of what was read."""
    ordered = sorted(partials, key=lambda partial: partial.shard.index)
    missing = sorted({shard.index for shard in plan.shards} - {partial.shard.index for partial in ordered})
    run = _Run(options=options)
    dedup = Deduplicator(options.near_duplicate_threshold, near=options.near_duplicates)
    line_offsets: Counter[int] = Counter()
    valid_per_file: Counter[int] = Counter()
    kept: Counter[str] = Counter()
    record_lines, lengths = [], []
    tokenizer = None
    for partial in ordered:
        shard = partial.shard
        offset = line_offsets[shard.file_index]
        line_offsets[shard.file_index] += partial.lines
        run.records += partial.records
        run.valid += partial.valid
        valid_per_file[shard.file_index] += partial.valid
        run.bytes_read += partial.bytes_read
        if run.format is None and partial.format is not None:
            run.format, run.format_detected = partial.format, partial.format_detected
        run.error_counts.update(partial.error_counts)
        for issue in partial.errors:
            kept[issue.code] += 1
            if kept[issue.code] <= options.max_errors_per_code:
                run.errors.append(issue.model_copy(update={"line": _shifted(issue.line, offset)}))
        run.warnings += partial.warnings
        run.pii_counts.update(partial.pii_counts)
        room = _PII_FINDINGS - len(run.pii_findings)
        run.pii_findings += [f.model_copy(update={"line": f.line + offset}) for f in partial.pii_findings[:room]]
        run.sha256.update(partial.sha256)
        run.audio_seconds += partial.audio_seconds
        run.images += partial.images
        run.media.extend(partial.media, offset)
        if partial.valid:
            record_lines.append(partial.record_lines + offset)
            dedup.extend(partial.digests, partial.band_keys)
        if partial.token_lengths is not None:
            lengths.append(partial.token_lengths)
            tokenizer = partial.tokenizer
    for index in missing:
        shard = plan.shards[index]
        where = f"bytes {shard.start}-{shard.end}" if shard.kind == "span" else shard.kind
        run.issue(shard.uri, None, "", "shard_failed", f"the validation of this object's {where} did not finish")
    if run.records > options.limits.max_records and "too_many_records" not in run.error_counts:
        limit = options.limits.max_records
        run.issue(plan.files[0], None, "", "too_many_records", f"more than max_records={limit} in the dataset")
    run.lines = array("q", np.concatenate(record_lines).astype(np.int64).tobytes()) if record_lines else array("q")
    files_with_records = max(valid_per_file, default=-1) + 1
    run.file_starts = [sum(valid_per_file[f] for f in range(index)) for index in range(files_with_records)]
    stats = None
    if tokenizer is not None:
        stats = token_stats(np.concatenate(lengths), tokenizer, options.max_seq_len)
    return _report(run, plan.uris, plan.files, dedup, stats, _join_redacted(plan, ordered, options))


def _join_redacted(plan: ShardPlan, partials: list[PartialReport], options: ValidationOptions) -> list[str]:
    """Each destination of ``pii: redact`` as the whole pass writes it: its inputs' parts, in order."""
    if options.pii != "redact" or not options.redact_into:
        return []
    destinations: dict[str, list[str]] = {}
    for shard in plan.shards:
        if shard.kind != "digest":
            destinations.setdefault(options.redact_into[shard.input_uri], [])
    for partial in partials:
        destinations[options.redact_into[partial.shard.input_uri]] += partial.redacted
    for destination, parts in destinations.items():
        with tempfile.TemporaryDirectory() as tmp:
            joined = Path(tmp) / "redacted.jsonl"
            with joined.open("wb") as out:
                for part in parts:
                    with open_store(part).open(part) as body:
                        while chunk := body.read(1 << 20):
                            out.write(chunk)
            open_store(destination).upload_file(joined, destination)
    return list(destinations)


def partial_uri(work_uri: str, shard: Shard) -> str:
    return join(work_uri, "partials", f"{shard.index:06d}.npz")


def store_partial(partial: PartialReport, work_uri: str) -> str:
    uri = partial_uri(work_uri, partial.shard)
    open_store(uri).write_bytes(uri, partial.to_bytes(), "application/octet-stream")
    return uri


#: a ZIP local file header: signature, versions, flags, method, time, date, crc, sizes, then the lengths of
#: the name and extra field that follow it (APPNOTE.TXT 4.3.7,
#: https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT)
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def read_partial_counts(store: ObjectStore, uri: str) -> tuple[int, int]:
    """(records, bytes_read) of a stored partial report, from its JSON header alone: ``to_bytes`` writes it
    as the .npz's first member, uncompressed, so it sits at the object's start and one short read finds it.
    A run's status reads a few KiB per shard this way, not the ~92 bytes per record the partial holds."""
    with store.open(uri) as body:
        fixed = _ZIP_LOCAL_HEADER.unpack(_read_exactly(body, _ZIP_LOCAL_HEADER.size, uri))
        name = _read_exactly(body, fixed[10], uri)
        if fixed[0] != b"PK\x03\x04" or fixed[4] != 0 or name != b"header.npy":
            raise ValueError(f"{uri}: not a partial report (its first member is not an uncompressed header.npy)")
        _read_exactly(body, fixed[11], uri)
        version = np.lib.format.read_magic(body)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        (length,), _, _ = read_header(body)
        header = orjson.loads(_read_exactly(body, length, uri))
    return header["records"], header["bytes_read"]


def _read_exactly(body: BinaryIO, size: int, uri: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = body.read(size - len(data))
        if not chunk:
            raise ValueError(f"{uri}: ends inside a partial report's header")
        data += chunk
    return data


def load_partials(plan: ShardPlan, work_uri: str) -> list[PartialReport]:
    """The partial reports the plan's shards left under ``work_uri``; a shard that left none is reported
    by the merge (``shard_failed``) rather than passed over."""
    found = []
    for shard in plan.shards:
        uri = partial_uri(work_uri, shard)
        store = open_store(uri)
        if store.exists(uri):
            found.append(PartialReport.from_bytes(store.read_bytes(uri)))
    return found
