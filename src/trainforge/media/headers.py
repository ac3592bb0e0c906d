"""Image and audio headers read in pure Python: what a file claims to be (format, size, sample rate,
channels, length) before anything decodes it.

This is the check that runs where no decoder is installed (the validation Lambda ships neither Pillow nor
libsndfile) and the first check everywhere else: a PNG that declares 50,000 x 50,000 pixels is refused
from its 24-byte header, before a decoder could allocate 7.5 GB for it.

A check reads a file's first 64 KiB; what lies further (a JPEG's frame header behind a phone's EXIF and ICC
segments, an MP3's first frame behind an ID3 tag with cover art, an OGG's last page) it fetches with ranged
reads of the same object version (``Window``), at most ``MAX_RANGED_READS`` of them per file, so a hostile
file cannot make a check read on and on.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainforge.store import ObjectStore

#: how many leading bytes a check reads first: every header but those below lies within them
HEADER_BYTES = 1 << 16
#: further ranged reads one file may take (a JPEG whose frame header lies behind ~4 MiB of 64 KiB metadata
#: segments still passes; each read is one GetObject in AWS)
MAX_RANGED_READS = 64
#: the least a further read fetches: the next few marker segments' headers come with one request
RANGE_BYTES = 4096


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
    #: None where the header does not say (an OGG of another codec, a free-format MP3): the decoder finds out
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None

    @property
    def seconds(self) -> float | None:
        if self.frames is None or not self.sample_rate:
            return None
        return self.frames / self.sample_rate


class Window:
    """A file as the header readers see it: its first bytes, its size and, where only those bytes are in
    hand, ranged reads of the rest (``read_at(start, length)``), at most ``MAX_RANGED_READS`` of them."""

    def __init__(self, head: bytes, size: int | None = None, read_at: Callable[[int, int], bytes] | None = None):
        if size is not None and size > len(head) and read_at is None:
            raise ValueError("a window over part of a file needs ranged reads of the rest")
        self.head = head
        self.size = len(head) if size is None else size
        self.read_at = read_at
        self.reads = 0
        self.bytes_read = len(head)
        self._block: tuple[int, bytes] = (0, b"")

    @classmethod
    def ranged(cls, store: ObjectStore, uri: str, size: int, head: bytes | None = None) -> Window:
        """A window on one object version (``uri`` pinned) of ``size`` bytes; ``head``: its first bytes,
        where the caller has read them already."""
        read_at = partial(store.read_range, uri)
        return cls(read_at(0, HEADER_BYTES) if head is None else head, size, read_at)

    def read(self, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` (fewer at the end of the file)."""
        end = min(start + length, self.size)
        if start >= end:
            return b""
        if end <= len(self.head):
            return self.head[start:end]
        first, block = self._block
        if first <= start and end <= first + len(block):
            return block[start - first : end - first]
        assert self.read_at is not None  # the constructor's guard: a head shorter than the file has read_at
        if self.reads >= MAX_RANGED_READS:
            raise MediaError(
                "undecodable_media",
                f"the header needs more than {MAX_RANGED_READS} further reads past the first {HEADER_BYTES} bytes "
                f"(reached byte {start} of {self.size}): too much metadata before the media to check it here",
            )
        self.reads += 1
        block = self.read_at(start, max(end - start, RANGE_BYTES))
        self.bytes_read += len(block)
        self._block = (start, block)
        return block[: end - start]


def _window(data: bytes | Window) -> Window:
    return data if isinstance(data, Window) else Window(data)


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


#: the start-of-frame markers SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC): ITU-T T.81 table B.1
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: markers that stand alone, without a length: TEM, RST0-7, SOI (T.81 B.1.1.3)
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
#: steps of the marker walk (segments and fill bytes) before the frame header: phone photos take a dozen
_MAX_JPEG_STEPS = 4096


def _jpeg(window: Window) -> ImageHeader:
    """The frame header's size, found by walking the marker segments from SOI by their lengths (ITU-T T.81
    annex B.1.1, https://www.w3.org/Graphics/JPEG/itu-t81.pdf: a marker is 0xFF and a code, optionally
    preceded by 0xFF fill bytes; a segment's 2-byte length counts itself and its parameters, not the
    marker; SOFn holds precision, then height and width as 16-bit big-endian numbers, B.2.2). EXIF (APP1)
    and ICC (APP2, up to 64 KiB a segment) segments come first, so the frame header of a phone photo may
    lie well past the first 64 KiB: the walk reads on in ranged reads."""
    position = 2
    for _ in range(_MAX_JPEG_STEPS):
        segment = window.read(position, 9)
        if len(segment) < 4:
            break
        if segment[0] != 0xFF:
            raise MediaError("undecodable_media", f"corrupt JPEG: no marker at byte {position}")
        marker = segment[1]
        if marker == 0xFF:  # a fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS: the image ends or its data starts without a frame header
            raise MediaError("undecodable_media", f"corrupt JPEG: no frame header before byte {position}")
        length = struct.unpack(">H", segment[2:4])[0]
        if marker in _SOF:
            if len(segment) < 9 or length < 8:
                break
            height, width = struct.unpack(">HH", segment[5:9])
            return ImageHeader("jpeg", width, height)
        if length < 2:
            raise MediaError("undecodable_media", f"corrupt JPEG: a segment of length {length} at byte {position}")
        position += 2 + length
    else:
        raise MediaError("undecodable_media", f"JPEG with over {_MAX_JPEG_STEPS} markers before its frame header")
    raise MediaError("undecodable_media", f"truncated JPEG: no frame header in its {window.size} bytes")


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


def image_header(data: bytes | Window) -> ImageHeader:
    """The format and declared size of a PNG, JPEG, GIF or WebP image: ``data`` is the whole file or a
    ``Window`` on it."""
    window = _window(data)
    head = window.head
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(window)
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _gif(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if not head:
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


#: Ogg's page header: capture pattern, version, type, granule position, serial, sequence, CRC, segments
#: (RFC 3533 section 6, https://www.rfc-editor.org/rfc/rfc3533.html#section-6)
_OGG_PAGE = struct.Struct("<4sBBqIIIB")
#: the largest page: its header, 255 lacing values, 255 segments of 255 bytes (RFC 3533 section 6)
_OGG_MAX_PAGE = _OGG_PAGE.size + 255 + 255 * 255
#: Opus's granule position counts 48 kHz samples whatever the input rate (RFC 7845 section 4)
_OPUS_GRANULE_RATE = 48_000
#: The rates an Opus decoder outputs (RFC 6716 section 2); libsndfile, which the decode path uses, decodes
#: at the lowest of them at or above the header's input rate (``ogg_opus_setup_decoder`` in
#: https://github.com/libsndfile/libsndfile/blob/master/src/ogg_opus.c), 8 kHz for an unknown (0) one
_OPUS_DECODE_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        value = index << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x80000000 else value << 1
        table.append(value & 0xFFFFFFFF)
    return tuple(table)


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(page: bytes) -> int:
    """The page checksum: CRC-32, polynomial 0x04c11db7, not reflected, initial value and final XOR 0,
    over the page with its CRC field zeroed (RFC 3533 section 6)."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
    return crc


def _ogg_last_granule(window: Window, serial: int) -> int | None:
    """The granule position of the stream's last page (its header type has the end-of-stream flag 0x04),
    read from the file's last ``_OGG_MAX_PAGE`` bytes, where that page starts. A candidate ``OggS`` is
    taken as a page only if its CRC holds, so the pattern inside compressed data is not mistaken for one.
    None when the last sound page of the stream is not an end-of-stream page with a position (a truncated
    or damaged file, a chained one): an earlier page would understate the length, so the decoder counts."""
    start = max(window.size - _OGG_MAX_PAGE, 0)
    tail = window.read(start, window.size - start)
    end = len(tail)
    while (found := tail.rfind(b"OggS", 0, end)) >= 0:
        end = found
        header = tail[found : found + _OGG_PAGE.size]
        if len(header) < _OGG_PAGE.size:
            continue
        _, version, kind, granule, page_serial, _, crc, segments = _OGG_PAGE.unpack(header)
        lacing = tail[found + _OGG_PAGE.size : found + _OGG_PAGE.size + segments]
        page = tail[found : found + _OGG_PAGE.size + segments + sum(lacing)]
        if version != 0 or page_serial != serial or len(lacing) < segments:
            continue
        if _ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != crc:
            continue
        return granule if kind & 0x04 and granule != -1 else None
    return None


def _ogg(window: Window) -> AudioHeader:
    """Sample rate and channels from the first page's identification header and the length from the last
    page's granule position. Vorbis: the granule counts samples at the stream's rate (Vorbis I
    specification sections 4.2.2 and A.2, https://xiph.org/vorbis/doc/Vorbis_I_spec.html). Opus: it counts
    48 kHz samples including the pre-skip (RFC 7845 sections 4 and 5.1,
    https://www.rfc-editor.org/rfc/rfc7845.html); the rate reported is the one libsndfile decodes at (the
    input rate the header records, rounded up to a rate Opus outputs). Another codec: format only."""
    header = window.read(0, _OGG_PAGE.size)
    if len(header) < _OGG_PAGE.size:
        raise MediaError("undecodable_media", "truncated OGG page header")
    serial, segments = _OGG_PAGE.unpack(header)[4], header[-1]
    packet = window.read(_OGG_PAGE.size + segments, 19)
    if packet[:7] == b"\x01vorbis" and len(packet) >= 16:
        channels, rate = packet[11], struct.unpack("<I", packet[12:16])[0]
        granule_rate, pre_skip = rate, 0
    elif packet[:8] == b"OpusHead" and len(packet) >= 16:
        channels, pre_skip = packet[9], struct.unpack("<H", packet[10:12])[0]
        input_rate = struct.unpack("<I", packet[12:16])[0]
        rate = next((r for r in _OPUS_DECODE_RATES if r >= input_rate), _OPUS_DECODE_RATES[-1])
        granule_rate = _OPUS_GRANULE_RATE
    else:
        return AudioHeader("ogg")
    if not rate:
        raise MediaError("undecodable_media", "an OGG identification header with a sample rate of 0")
    granule = _ogg_last_granule(window, serial)
    frames = None if granule is None else max(granule - pre_skip, 0) * rate // granule_rate
    return AudioHeader("ogg", rate, channels, frames)


#: kbit/s by bitrate index (1-14) for MPEG-1 layers I-III and MPEG-2/2.5 layers I and II-III
#: (ISO/IEC 11172-3 2.4.2.3, 13818-3 2.4.2.3; http://www.mp3-tech.org/programmer/frame_header.html)
_MP3_BITRATES = {
    (3, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (3, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (3, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 1): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
#: Hz by sample-rate index for MPEG-1 (version bits 3), MPEG-2 (2) and MPEG-2.5 (0)
_MP3_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}
#: how far past the ID3 tag the first frame may start (encoders pad with zeros)
_MP3_SYNC_SEARCH = 4096


def _id3_end(window: Window) -> int:
    """Where the audio starts after an ID3v2 tag (0 without one): 10 header bytes, the tag's size as four
    7-bit bytes, 10 more with the footer flag (ID3v2.4 structure section 3.1, https://id3.org/id3v2.4.0-structure)."""
    tag = window.read(0, 10)
    if tag[:3] != b"ID3" or len(tag) < 10:
        return 0
    size = 0
    for byte in tag[6:10]:
        size = size << 7 | byte & 0x7F
    return 10 + size + (10 if tag[5] & 0x10 else 0)


#: a Xing header with every field (tag, flags, frames, bytes, 100-byte TOC, quality) and LAME's tag up to
#: its encoder delay and padding
_XING_LAME_BYTES = 8 + 4 + 4 + 100 + 4 + 24


def _lame_gap(xing: bytes) -> int:
    """The samples LAME's tag says the encoder added (delay at the start, padding at the end), which a
    gapless decoder such as libsndfile's drops: 12 bits each, 21 bytes into the tag that follows the Xing
    fields the flags name (http://gabriel.mp3-tech.org/mp3infotag.html); 0 without a LAME tag."""
    flags = xing[7]
    lame = 8 + sum(size for bit, size in ((1, 4), (2, 4), (4, 100), (8, 4)) if flags & bit)
    gap = xing[lame + 21 : lame + 24]
    if xing[lame : lame + 4] != b"LAME" or len(gap) < 3:
        return 0
    bits = int.from_bytes(gap, "big")
    return (bits >> 12) + (bits & 0xFFF)


def _mp3(window: Window) -> AudioHeader:
    """Rate, channels and length of an MP3 from its first frame: the frame count of a Xing/Info or VBRI
    header (what encoders write for VBR, and LAME for CBR too) times the samples per frame, else, for a
    constant bitrate, the audio's bytes over the bitrate. Frame header: ISO/IEC 11172-3 2.4.1.3; Xing at
    the end of the side information, VBRI 32 bytes after the frame header
    (https://www.codeproject.com/Articles/8295/MPEG-Audio-Frame-Header). A free-format stream (bitrate
    index 0) has no length here: the decoder counts."""
    start = _id3_end(window)
    search = window.read(start, _MP3_SYNC_SEARCH)
    offset = next((i for i in range(len(search) - 1) if search[i] == 0xFF and search[i + 1] & 0xE0 == 0xE0), None)
    if offset is None:
        raise MediaError("undecodable_media", f"no MPEG audio frame within {_MP3_SYNC_SEARCH} bytes of byte {start}")
    start += offset
    frame = window.read(start, 4 + 32 + _XING_LAME_BYTES)
    bits = int.from_bytes(frame[:4], "big") if len(frame) >= 4 else 0
    version, layer, bitrate_index, rate_index = (bits >> 19) & 3, (bits >> 17) & 3, (bits >> 12) & 15, (bits >> 10) & 3
    if version == 1 or layer == 0 or bitrate_index == 15 or rate_index == 3:
        raise MediaError("undecodable_media", f"an invalid MPEG audio frame header at byte {start}")
    rate, mono = _MP3_RATES[version][rate_index], (bits >> 6) & 3 == 3
    samples_per_frame = {3: 384, 2: 1152, 1: 1152 if version == 3 else 576}[layer]
    side_info = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    frames = None
    xing = frame[4 + side_info :]
    if layer == 1 and xing[:4] in (b"Xing", b"Info") and len(xing) >= 12 and xing[7] & 1:
        frames = max(struct.unpack(">I", xing[8:12])[0] * samples_per_frame - _lame_gap(xing), 0)
    elif frame[36:40] == b"VBRI" and len(frame) >= 54:
        frames = struct.unpack(">I", frame[50:54])[0] * samples_per_frame
    elif bitrate_index:
        bitrate = _MP3_BITRATES[(3 if version == 3 else 2, layer)][bitrate_index - 1] * 1000
        frames = (window.size - start) * 8 * rate // bitrate
    return AudioHeader("mp3", rate, 1 if mono else 2, frames)


def audio_header(data: bytes | Window) -> AudioHeader:
    """The container and, where its headers say, sample rate, channels and length of a WAV, FLAC, OGG
    (Vorbis, Opus) or MP3 file: ``data`` is the whole file or a ``Window`` on it."""
    window = _window(data)
    head = window.head
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _wav(head)
    if head.startswith(b"fLaC"):
        return _flac(head)
    if head.startswith(b"OggS"):
        return _ogg(window)
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return _mp3(window)
    if not head:
        raise MediaError("empty_media", "the file is empty")
    raise MediaError("unsupported_media", "not a WAV, FLAC, OGG or MP3 file")
