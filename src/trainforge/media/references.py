"""Where a record's media lives: a key relative to the folder of the JSON-lines file that names it
(``audio/0001.wav`` beside ``train.jsonl``) or, for images, an inline ``data:`` URI. Media are read through
the dataset's own store and nothing else: any URI (s3://, file://, a web URL) is refused, so validation,
training and evaluation read the very bytes the dataset owner uploaded beside the records, and Prepare
copies each of them into the run.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from trainforge.media.headers import MediaError
from trainforge.media.limits import base64_chars
from trainforge.store import ObjectStore

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MEDIA_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", *IMAGE_SUFFIXES)


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
    inline = data_uri(reference, limit)
    if inline is not None:
        data = inline.data
    else:
        uri = resolve(reference, records_uri)
        if not store.exists(uri):
            raise MediaError("media_not_found", f"'{reference}' is not in the store ({uri})")
        size = store.head(uri).size
        if size > limit:
            raise MediaError("media_too_large", f"'{reference}' is {size} bytes, over the limit of {limit}")
        data = store.read_bytes(uri)
    if len(data) > limit:
        raise MediaError("media_too_large", f"{len(data)} bytes is over the limit of {limit}")
    return data


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


def copy_media(records_uri: str, source_uri: str, target_uri: str, store: ObjectStore) -> int:
    """Copy the media the records at ``source_uri`` (a pinned version of ``records_uri``) name by relative key
    to the same keys beside ``target_uri`` (the run's own copy of the records); returns how many. Training
    and evaluation then resolve every key inside their channel, as validation resolved it in the store."""
    if not is_records_file(records_uri):
        return 0
    with store.open(source_uri) as handle:  # line by line: a records file may be large
        keys = referenced_keys(handle)
    for key in keys:
        store.copy(resolve(key, records_uri), resolve(key, target_uri))
    return len(keys)


def is_records_file(name: str) -> bool:
    return name.lower().endswith((".jsonl", ".json"))
