"""Image and audio headers read from their first bytes, in pure Python: what a file claims to be (format,
size, sample rate, channels) before anything decodes it.

This is the check that runs where no decoder is installed (the validation Lambda ships neither Pillow nor
libsndfile) and the first check everywhere else: a PNG that declares 50,000 x 50,000 pixels is refused
from its 24-byte header, before a decoder could allocate 7.5 GB for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: how many leading bytes the header readers need (a JPEG's SOF marker may follow EXIF blocks)
HEADER_BYTES = 1 << 16


class MediaError(ValueError):
    """A media file that cannot be used: ``code`` is the report's stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class AudioHeader:
    format: str
    #: None where the container's header does not say (ogg, mp3): the decoder finds out
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None

    @property
    def seconds(self) -> float | None:
        if self.frames is None or not self.sample_rate:
            return None
        return self.frames / self.sample_rate


def _png(data: bytes) -> ImageHeader:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise MediaError("undecodable_media", "truncated PNG: no IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("png", width, height)


def _gif(data: bytes) -> ImageHeader:
    if len(data) < 10:
        raise MediaError("undecodable_media", "truncated GIF header")
    width, height = struct.unpack("<HH", data[6:10])
    return ImageHeader("gif", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            raise MediaError("undecodable_media", f"corrupt JPEG: no marker at byte {position}")
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageHeader("jpeg", width, height)
        position += 2 + length
    raise MediaError("undecodable_media", "JPEG without a frame header in its first 64 KiB")


def _webp(data: bytes) -> ImageHeader:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif kind == b"VP8 " and len(data) >= 30:
        width, height = (value & 0x3FFF for value in struct.unpack("<HH", data[26:30]))
    elif kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise MediaError("undecodable_media", "truncated or unknown WebP header")
    return ImageHeader("webp", width, height)


def image_header(data: bytes) -> ImageHeader:
    """The format and declared size of a PNG, JPEG, GIF or WebP image from its first bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _gif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if not data:
        raise MediaError("empty_media", "the file is empty")
    raise MediaError("unsupported_media", "not a PNG, JPEG, GIF or WebP image")


def _wav(data: bytes) -> AudioHeader:
    position, sample_rate, channels, block = 12, None, None, None
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        if chunk == b"fmt " and position + 24 <= len(data):
            channels, sample_rate, _, block = struct.unpack("<HIIH", data[position + 10 : position + 22])
        elif chunk == b"data":
            if not block:
                break
            return AudioHeader("wav", sample_rate, channels, size // block)
        position += 8 + size + (size & 1)
    if sample_rate is None:
        raise MediaError("undecodable_media", "WAV without a fmt chunk")
    return AudioHeader("wav", sample_rate, channels)


def _flac(data: bytes) -> AudioHeader:
    if len(data) < 26:
        raise MediaError("undecodable_media", "truncated FLAC header")
    bits = int.from_bytes(data[18:26], "big")  # STREAMINFO: 20 bits rate, 3 channels-1, 5 depth-1, 36 frames
    # 0 frames means the encoder did not know the length, not an empty stream (RFC 9639 section 8.2,
    # https://www.rfc-editor.org/rfc/rfc9639.html): the decoder then counts the samples
    frames = bits & 0xFFFFFFFFF
    return AudioHeader("flac", bits >> 44, ((bits >> 41) & 0x7) + 1, frames or None)


def audio_header(data: bytes) -> AudioHeader:
    """The container and, where its header says, sample rate, channels and length of a WAV, FLAC, OGG or
    MP3 file."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav(data)
    if data.startswith(b"fLaC"):
        return _flac(data)
    if data.startswith(b"OggS"):
        return AudioHeader("ogg")
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return AudioHeader("mp3")
    if not data:
        raise MediaError("empty_media", "the file is empty")
    raise MediaError("unsupported_media", "not a WAV, FLAC, OGG or MP3 file")
