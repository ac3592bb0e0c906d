"""The media manifest: every audio and image object a validation pass vouched for, pinned to the version it
read and the sha256 of those bytes, and Prepare's copy of exactly those versions into the run.

The records file is pinned at admission (its S3 version id); the objects its records name are pinned here,
when validation reads them, so an object overwritten between Validate and Prepare is refused, not trained.
One digest serves both ends: the sha256 computed while the object streams through validation is the
manifest's and the duplicate check's (``MediaSeen``), in the single pass, in each shard of the map, and
in the merge, which finds a copy whose first use is in another shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from trainforge.contracts import MediaObject
from trainforge.errors import DatasetRejected, StoreError
from trainforge.media.references import chunks, is_records_file, referenced_keys, resolve
from trainforge.store import ObjectStore, pin_version


@dataclass(frozen=True)
class _Use:
    """Where a record used an object: its records file, line and reference."""

    file: str
    line: int
    reference: str

    def shifted(self, offset: int) -> _Use:
        return _Use(self.file, self.line + offset, self.reference)

    def render(self) -> str:
        return f"{self.reference} ({self.file} line {self.line})"


@dataclass
class MediaSeen:
    """The media of a pass so far: each object once (by URI, its first use), and, for audio, the first use
    of each sha256 so a later record using the same bytes is counted as a duplicate (kept, like duplicate
    text, and reported with the first one in reading order)."""

    objects: dict[str, MediaObject] = field(default_factory=dict)
    first_audio: dict[str, _Use] = field(default_factory=dict)
    duplicates: int = 0
    #: (the later use, the first use) of the first duplicate in reading order
    note: tuple[_Use, _Use] | None = None

    def use(self, entry: MediaObject, file: str, line: int, audio: bool) -> None:
        self.objects.setdefault(entry.uri, entry.model_copy(update={"file": file, "line": line}))
        if audio:
            self._first(entry.sha256, _Use(file, line, entry.reference))

    def _first(self, sha256: str, use: _Use) -> None:
        first = self.first_audio.setdefault(sha256, use)
        if (first.file, first.line) != (use.file, use.line):
            self.duplicates += 1
            self.note = self.note or (use, first)

    def extend(self, later: MediaSeen, line_offset: int) -> None:
        """Add a later shard's media (its lines ``line_offset`` short of the file's): its own duplicates,
        and the first use of each of its digests, a duplicate when an earlier shard used the same bytes. The
        note stays the earliest duplicate, as one pass over both would have it."""
        for uri, entry in later.objects.items():
            self.objects.setdefault(uri, entry.model_copy(update={"line": entry.line + line_offset}))
        noted = self.note is not None
        self.duplicates += later.duplicates
        for sha256, use in later.first_audio.items():  # in the shard's reading order
            self._first(sha256, use.shifted(line_offset))
        if not noted and later.note is not None:
            own = (later.note[0].shifted(line_offset), later.note[1].shifted(line_offset))
            if self.note is None or own[0].line < self.note[0].line:
                self.note = own

    def summary(self) -> list[str]:
        """The report's line about duplicate audio (a warning: the report's place for notes)."""
        if self.note is None:
            return []
        use, first = self.note
        return [
            f"{self.duplicates} audio files used by more than one record: {use.render()} has the same bytes as "
            f"the file of {first.render()}"
        ]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "objects": [entry.model_dump(mode="json") for entry in self.objects.values()],
                "first_audio": {sha: [u.file, u.line, u.reference] for sha, u in self.first_audio.items()},
                "duplicates": self.duplicates,
                "note": None if self.note is None else [[u.file, u.line, u.reference] for u in self.note],
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> MediaSeen:
        loaded: dict[str, Any] = orjson.loads(data)
        objects = (MediaObject.model_validate(entry) for entry in loaded["objects"])
        return cls(
            objects={entry.uri: entry for entry in objects},
            first_audio={sha: _Use(*use) for sha, use in loaded["first_audio"].items()},
            duplicates=loaded["duplicates"],
            note=None if loaded["note"] is None else (_Use(*loaded["note"][0]), _Use(*loaded["note"][1])),
        )


def write_manifest(objects: Iterable[MediaObject], store: ObjectStore, uri: str) -> None:
    """The manifest as JSON lines, one object a line."""
    store.write_bytes(uri, b"".join(orjson.dumps(entry.model_dump(mode="json")) + b"\n" for entry in objects))


def read_manifest(store: ObjectStore, uri: str) -> dict[str, MediaObject]:
    """The manifest at ``uri``, by object URI."""
    with store.open(uri) as body:
        entries = (MediaObject.model_validate_json(line) for line in body if line.strip())
        return {entry.uri: entry for entry in entries}


def copy_validated(entry: MediaObject, target_uri: str, store: ObjectStore) -> None:
    """Copy the version validation read of ``entry`` to ``target_uri``; DatasetRejected, naming the key and
    both versions or digests, when that version is no longer what the store holds.

    An S3 version id names immutable bytes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/versioning-workflows.html),
    so a pinned copy is the validated object or fails when that version was deleted. A local file's version
    (``mtime-size``) only says it was not rewritten; there, and for an unversioned object, the copy is hashed
    and compared."""
    source = pin_version(entry.uri, entry.version_id)
    where = f"'{entry.reference}' ({entry.file} line {entry.line})"
    try:
        current = store.head(source)
    except StoreError as exc:
        raise DatasetRejected(
            f"{where} changed after validation: version {entry.version_id} (sha256 {entry.sha256}) is gone ({exc})",
            details=entry.uri,
        ) from exc
    if current.version_id != entry.version_id:
        raise DatasetRejected(
            f"{where} changed after validation: validated version {entry.version_id}, now {current.version_id}",
            details=entry.uri,
        )
    store.copy(source, target_uri)
    if source == entry.uri:  # nothing pinned the bytes: compare them
        copied = _sha256(store, target_uri)
        if copied != entry.sha256:
            raise DatasetRejected(
                f"{where} changed after validation: validated sha256 {entry.sha256}, copied {copied}",
                details=entry.uri,
            )


def copy_media(
    records_uri: str, source_uri: str, target_uri: str, store: ObjectStore, validated: dict[str, MediaObject]
) -> int:
    """Copy the media the records at ``source_uri`` (a pinned version of ``records_uri``) name by relative key
    to the same keys beside ``target_uri`` (the run's own copy of the records), each at the version in
    ``validated`` (the run's manifest, by URI); returns how many. Training and evaluation then resolve every
    key inside their channel, as validation resolved it in the store. A key validation did not read (it was
    not in a valid record) is refused: nothing unvalidated is trained."""
    if not is_records_file(records_uri):
        return 0
    with store.open(source_uri) as handle:  # line by line: a records file may be large
        keys = referenced_keys(handle)
    for key in keys:
        entry = validated.get(resolve(key, records_uri))
        if entry is None:
            raise DatasetRejected(
                f"'{key}' (named in {records_uri}) is not among the media validation read; validate the data again",
                details=records_uri,
            )
        copy_validated(entry, resolve(key, target_uri), store)
    return len(keys)


def _sha256(store: ObjectStore, uri: str) -> str:
    digest = hashlib.sha256()
    with store.open(uri) as body:
        for chunk in chunks(body):
            digest.update(chunk)
    return digest.hexdigest()
