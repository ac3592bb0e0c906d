"""The media a valid record names, checked: the file is in the store, decodes (or, where no decoder is
installed, has a sound header), is within the limits, and is not a copy of a file another record already
used. One checker per validation pass; it also totals the audio's hours and counts the images for the
report, and lists every object it read, at the version it read, with its sha256 (``manifest.py``): Prepare
copies exactly those versions.

Where the checks run: the local validator and the training container decode every file (Pillow, soundfile);
the validation Lambda ships without them (its layer is the core package, no native media libraries) and
checks headers only (``headers.py``: each file's first 64 KiB, and bounded ranged reads of the version read
where a header lies further): existence, format, declared size, sample rate, channels and length, bomb
headers. Decoding errors past the header then surface in training, naming the file. Both
stream every byte through sha256 (the manifest's digest and the duplicate check's).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trainforge.contracts import DataIssue, DatasetReport, MediaObject
from trainforge.media.decode import check_audio_format, check_audio_length, check_image_size, decode_audio, decode_image
from trainforge.media.headers import HEADER_BYTES, MediaError, Window, audio_header, image_header
from trainforge.media.limits import MediaLimits
from trainforge.media.manifest import MediaSeen
from trainforge.media.records import image_parts
from trainforge.media.references import IMAGE_SUFFIXES, read_medium
from trainforge.store import ObjectStore, pin_version

Problem = tuple[str, str, str]
#: the formats whose records name media, and the modality of base model each needs
MEDIA_FORMATS = {"speech": "speech", "multimodal": "vision-text"}
#: the ``base_model`` tier to name for each modality
_TIERS = {"speech": "speech", "vision-text": "multimodal", "text": "lite or pro"}


def format_refusal(fmt: str, modality: str | None) -> str | None:
    """Why a base model of ``modality`` cannot train on records of format ``fmt`` (None: it can, or the
    modality is unknown, a folder URI's). The one rule of which format each tier trains on: a speech model
    on speech records, an image+text model on multimodal records (its processor builds every batch, so
    chat text alone does not train it), a text model on the text formats."""
    if modality is None:
        return None
    needs = MEDIA_FORMATS.get(fmt, "text")
    if needs == modality:
        return None
    trains_on = next((name for name, kind in MEDIA_FORMATS.items() if kind == modality), None)
    expected = f"data.format {trains_on}" if trains_on else "a text format (chat, prompt_completion, text, ...)"
    return (
        f"data.format {fmt} does not fit base_model, a {modality} model ({_TIERS.get(modality, modality)} tier): "
        f"it trains on {expected}; {fmt} records need base_model: {_TIERS[needs]}"
    )


def decoders_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("soundfile", "PIL"))


@dataclass
class MediaChecker:
    store: ObjectStore
    limits: MediaLimits = field(default_factory=MediaLimits)
    #: the base model's modality ("text", "speech", "vision-text"); None when unknown (a folder URI)
    modality: str | None = None
    #: decode every file (False: header-level checks only, as in the Lambda)
    decode: bool = field(default_factory=decoders_installed)
    audio_seconds: float = 0.0
    images: int = 0
    #: every object read, and the duplicate audio among them
    seen: MediaSeen = field(default_factory=MediaSeen)

    def check(self, records_uri: str, line: int, record: dict[str, Any], fmt: str) -> list[Problem]:
        """Problems of one structurally valid record's media (empty: all good)."""
        if fmt == "speech":
            if self.modality not in (None, "speech"):
                return [
                    (
                        "$.audio",
                        "audio_in_text_tier",
                        f"audio needs a speech base model (base_model: speech); this one is {self.modality}",
                    )
                ]
            return self._audio(records_uri, line, record["audio"], record["text"])
        if fmt in ("multimodal", "chat"):
            parts = list(image_parts(record))
            if parts and self.modality not in (None, "vision-text"):
                path = parts[0][0].rsplit(".", 1)[0]
                return [
                    (
                        path,
                        "image_in_text_tier",
                        f"an image part needs a multimodal base model (base_model: multimodal); this one is {self.modality or 'text'}",
                    )
                ]
            return self._images(records_uri, line, parts)
        return []

    def _bytes(self, reference: str, records_uri: str, limit: int) -> tuple[bytes, MediaObject | None]:
        """What the checks read of a medium (all of it to decode, else its header) and its manifest entry
        (None for a ``data:`` URI: its bytes are in the record)."""
        return read_medium(reference, records_uri, self.store, limit, None if self.decode else HEADER_BYTES)

    def _window(self, data: bytes, entry: MediaObject | None) -> Window:
        """What the header checks read: the bytes in hand and, past them, ranged reads of the version read."""
        if entry is None:
            return Window(data)
        return Window.ranged(self.store, pin_version(entry.uri, entry.version_id), entry.size, head=data)

    def _audio(self, records_uri: str, line: int, reference: str, text: str) -> list[Problem]:
        problems: list[Problem] = []
        if len(text) > self.limits.max_transcript_chars:
            problems.append(
                ("$.text", "transcript_too_long", f"{len(text)} characters is over {self.limits.max_transcript_chars}")
            )
        try:
            data, entry = self._bytes(reference, records_uri, self.limits.max_audio_bytes)
            if self.decode:
                seconds = decode_audio(data, self.limits).seconds
            else:
                header = audio_header(self._window(data, entry))
                check_audio_format(header.sample_rate, header.channels, self.limits)
                seconds = header.seconds or 0.0
                if header.seconds is not None:
                    check_audio_length(seconds, self.limits)
        except MediaError as exc:
            return [*problems, ("$.audio", exc.code, f"{reference}: {exc}")]
        if not problems:
            if entry is not None:
                self.seen.use(entry, records_uri, line, audio=True)
            self.audio_seconds += seconds
        return problems

    def _images(self, records_uri: str, line: int, parts: Iterable[tuple[str, Any]]) -> list[Problem]:
        problems: list[Problem] = []
        listed = list(parts)
        if len(listed) > self.limits.max_images_per_example:
            problems.append(
                (
                    "$.messages",
                    "too_many_images",
                    f"{len(listed)} images is over {self.limits.max_images_per_example} per example",
                )
            )
        for path, reference in listed:
            shown = reference if not reference.startswith("data:") else "the data URI"
            try:
                data, entry = self._bytes(reference, records_uri, self.limits.max_image_bytes)
                if self.decode:
                    decode_image(data, self.limits)
                else:
                    header = image_header(self._window(data, entry))
                    check_image_size(header.width, header.height, self.limits)
            except MediaError as exc:
                problems.append((path, exc.code, f"{shown}: {exc}"))
                continue
            if entry is not None:
                self.seen.use(entry, records_uri, line, audio=False)
            self.images += 1
        return problems

    def summary(self) -> list[str]:
        """The report's note on how the media were checked (duplicates: ``MediaSeen.summary``, once merged)."""
        if not self.decode:
            return ["media checked from their headers only (no decoder installed here); training decodes them"]
        return []


def media_object_report(uri: str, store: ObjectStore, limits: MediaLimits = MediaLimits()) -> DatasetReport:
    """The report of one uploaded audio or image file (the upload Lambda's, where no decoder is installed):
    its header's verdict (format, declared size, sample rate, channels, length). Its records check it again,
    decoded, when they name it."""
    window = Window.ranged(store, uri, store.head(uri).size)
    errors = []
    try:
        if uri.split("?", 1)[0].lower().endswith(IMAGE_SUFFIXES):  # without a pinned version's ?versionId=
            header = image_header(window)
            check_image_size(header.width, header.height, limits)
        else:
            sound = audio_header(window)
            check_audio_format(sound.sample_rate, sound.channels, limits)
            if sound.seconds is not None:
                check_audio_length(sound.seconds, limits)
    except MediaError as exc:
        errors.append(DataIssue(file=uri, line=None, field="", code=exc.code, message=str(exc)))
    return DatasetReport(
        ok=not errors,
        files=[uri],
        format=None,
        format_detected=False,
        bytes_read=window.bytes_read,
        records=0,
        valid_records=0,
        errors=errors,
        error_counts={issue.code: 1 for issue in errors},
        warnings=["a media file: checked from its header here; the records that name it decode it"],
    )
