"""Where a record's media lives: a key relative to the folder of the JSON-lines file that names it
(``audio/0001.wav`` beside ``train.jsonl``) or, for images, an inline ``data:`` URI. Media are read through
the dataset's own store and nothing else: any URI (s3://, file://, a web URL) is refused, so validation,
training and evaluation read the very bytes the dataset owner uploaded beside the records, and Prepare
copies each of them, at the version validation read (``manifest.py``), into the run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from trainforge.contracts import MediaObject
from trainforge.errors import StoreError
from trainforge.media.headers import MediaError
from trainforge.media.limits import base64_chars
from trainforge.store import ObjectStore, pin_version

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MEDIA_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", *IMAGE_SUFFIXES)
_CHUNK = 1 << 20


def is_media_file(name: str) -> bool:
    """Media objects sit beside the records; readers of records skip them."""
    return name.lower().endswith(MEDIA_SUFFIXES)


def resolve(reference: str, records_uri: str) -> str:
    """The URI of ``reference``, a key relative to the folder of the records file at ``records_uri``.

    An absolute URI is refused, so a record reads nothing outside its own folder and Prepare copies every
    medium it names; the key is judged as the stores read it (percent-decoded, ``..`` resolved)."""
    if not isinstance(reference, str) or not reference.strip():
        raise MediaError("wrong_type", "a media reference must be a non-empty string (a key or a URI)")
    folder = records_uri.rsplit("/", 1)[0]
    if "://" in reference:
        raise MediaError(
            "media_outside_store",
            f"'{reference}': use a key relative to the records file's folder ({folder}/), not a URI",
        )
    for form in (reference, unquote(reference)):
        if form.startswith("/") or posixpath.normpath(form).split("/")[0] == "..":
            raise MediaError(
                "media_outside_store",
                f"'{reference}' leaves the records file's folder: use a key relative to it ({folder}/)",
            )
    return f"{folder}/{posixpath.normpath(reference)}"


@dataclass(frozen=True)
class Inline:
    """A ``data:`` URI's bytes."""

    data: bytes


def data_uri(reference: str, limit: int) -> Inline | None:
    """The bytes (at most ``limit``, refused before decoding) of a ``data:image/...;base64,...`` reference,
    None for any other reference."""
    if not reference.startswith("data:"):
        return None
    header, _, payload = reference.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise MediaError("unsupported_media", "a data URI must be data:image/<type>;base64,<bytes>")
    if len(payload) > base64_chars(limit):
        raise MediaError("media_too_large", f"the data URI holds over {limit} bytes")
    try:
        return Inline(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise MediaError("undecodable_media", f"the data URI is not valid base64: {exc}") from exc


def read_media(reference: str, records_uri: str, store: ObjectStore, limit: int) -> bytes:
    """The bytes a reference names (at most ``limit``; a missing object is a MediaError)."""
    return read_medium(reference, records_uri, store, limit)[0]


def read_medium(
    reference: str, records_uri: str, store: ObjectStore, limit: int, keep: int | None = None
) -> tuple[bytes, MediaObject | None]:
    """The first ``keep`` bytes (None: all) a reference names and, for an object in the store, its manifest
    entry (``read_pinned``); a ``data:`` URI's bytes come with None."""
    inline = data_uri(reference, limit)
    if inline is None:
        return read_pinned(reference, records_uri, store, limit, keep)
    if len(inline.data) > limit:
        raise MediaError("media_too_large", f"{len(inline.data)} bytes is over the limit of {limit}")
    return inline.data[:keep], None


def read_pinned(
    reference: str, records_uri: str, store: ObjectStore, limit: int, keep: int | None
) -> tuple[bytes, MediaObject]:
    """Stream the object ``reference`` names, at the version ``head`` reports, hashing every byte in
    ``_CHUNK`` pieces; returns its first ``keep`` bytes (None: all of them, at most ``limit``) and its
    manifest entry (file and line left for the caller). Over ``limit`` bytes is a MediaError."""
    uri = resolve(reference, records_uri)
    try:
        info = store.head(uri)
    except StoreError as exc:
        raise MediaError("media_not_found", f"'{reference}' is not in the store ({uri})") from exc
    if info.size > limit:
        raise MediaError("media_too_large", f"'{reference}' is {info.size} bytes, over the limit of {limit}")
    digest, kept, size = hashlib.sha256(), bytearray(), 0
    with store.open(pin_version(uri, info.version_id)) as body:
        for chunk in chunks(body):
            size += len(chunk)
            if size > limit:
                raise MediaError("media_too_large", f"'{reference}' grew past the limit of {limit} bytes")
            digest.update(chunk)
            if keep is None or len(kept) < keep:
                kept += chunk if keep is None else chunk[: keep - len(kept)]
    entry = MediaObject(
        uri=uri, version_id=info.version_id, sha256=digest.hexdigest(), size=size, file="", line=0, reference=reference
    )
    return bytes(kept), entry


def chunks(body: Any) -> Iterator[bytes]:
    """A stream's bytes, a MiB at a time."""
    while chunk := body.read(_CHUNK):
        yield chunk


def referenced_keys(records: Iterable[bytes]) -> list[str]:
    """The relative media keys a JSON-lines object names (audio, image parts), each once, in order;
    lines that are not records naming media are skipped (validation has judged them)."""
    import orjson

    from trainforge.media.records import image_parts

    keys: dict[str, None] = {}
    for line in records:
        try:
            record = orjson.loads(line) if line.strip() else None
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        named = [record.get("audio"), *(reference for _, reference in image_parts(record))]
        for reference in named:
            if isinstance(reference, str) and "://" not in reference and not reference.startswith("data:"):
                keys[reference] = None
    return list(keys)


def is_records_file(name: str) -> bool:
    return name.lower().endswith((".jsonl", ".json"))
