"""Header-only checks on real byte layouts, as the validation Lambda runs them (no decoder): a phone JPEG
whose frame header lies behind 100 KiB of ICC profile, OGG Vorbis and Opus and MP3 lengths (Xing, ID3v2
cover art, constant bitrate), each read through the store with bounded ranged reads."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile
from PIL import Image

from trainforge.local.file_store import FileStore
from trainforge.media.checks import MediaChecker, media_object_report
from trainforge.media.headers import (
    HEADER_BYTES,
    MAX_RANGED_READS,
    ImageHeader,
    MediaError,
    Window,
    _ogg_crc,
    audio_header,
    image_header,
)


class CountingStore(FileStore):
    """The filesystem store, counting its ranged reads (what each costs a GetObject in AWS)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        self.ranges.append((start, length))
        return super().read_range(uri, start, length)


def phone_jpeg(icc_bytes: int = 100 * 1024, size: tuple[int, int] = (40, 30)) -> bytes:
    """A JPEG whose APP2 ICC profile segments (Pillow splits it into 64 KiB chunks) precede the frame header."""
    encoded = io.BytesIO()
    profile = np.random.default_rng(0).integers(0, 256, icc_bytes, dtype=np.uint8).tobytes()
    Image.new("RGB", size, "red").save(encoded, "JPEG", icc_profile=profile)
    return encoded.getvalue()


def tone(seconds: float, rate: int, container: str, subtype: str) -> bytes:
    encoded = io.BytesIO()
    samples = (0.3 * np.sin(np.arange(int(seconds * rate)) / 10)).astype(np.float32)
    soundfile.write(encoded, samples, rate, format=container, subtype=subtype)
    return encoded.getvalue()


def sof_offset(data: bytes) -> int:
    """Where the walk finds SOF0: after the last APP2 segment (random ICC bytes may hold FF C0 too)."""
    position = 2
    while data[position + 1] != 0xC0:
        position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    return position


def test_a_phone_jpeg_with_its_frame_header_past_64_kib(tmp_path):
    data = phone_jpeg()
    assert sof_offset(data) > HEADER_BYTES
    with pytest.raises(MediaError, match="no frame header"):
        image_header(data[:HEADER_BYTES])  # what the Lambda read before: refused
    (tmp_path / "phone.jpg").write_bytes(data)
    store = CountingStore()
    report = media_object_report((tmp_path / "phone.jpg").as_uri(), store)
    assert report.ok and report.bytes_read < len(data)
    assert len(store.ranges) == 3  # the first 64 KiB, the second ICC segment's marker, the frame header
    window = Window.ranged(store, (tmp_path / "phone.jpg").as_uri(), len(data))
    assert image_header(window) == image_header(data) == ImageHeader("jpeg", 40, 30)


def test_a_hostile_jpeg_cannot_make_the_check_read_on():
    """Hundreds of 5 KB segments before any frame header: refused after MAX_RANGED_READS reads."""
    segment = b"\xff\xe1" + struct.pack(">H", 5002) + bytes(5000)
    data = b"\xff\xd8" + segment * 400 + b"\xff\xd9"
    reads: list[int] = []

    def read_at(start: int, length: int) -> bytes:
        reads.append(start)
        return data[start : start + length]

    with pytest.raises(MediaError, match=f"more than {MAX_RANGED_READS} further reads"):
        image_header(Window(data[:HEADER_BYTES], len(data), read_at))
    assert len(reads) == MAX_RANGED_READS


@pytest.mark.parametrize(
    ("container", "subtype", "rate"),
    [("OGG", "VORBIS", 16_000), ("OGG", "OPUS", 16_000), ("OGG", "OPUS", 48_000), ("MP3", "MPEG_LAYER_III", 44_100)],
)
def test_compressed_lengths_from_their_headers_match_the_decoder(container, subtype, rate):
    for seconds in (0.05, 2.0):
        data = tone(seconds, rate, container, subtype)
        header = audio_header(data)
        info = soundfile.info(io.BytesIO(data))
        assert (header.sample_rate, header.channels) == (info.samplerate, info.channels)
        assert header.seconds == pytest.approx(info.duration, abs=1e-3)


def with_opus_input_rate(data: bytes, input_rate: int) -> bytes:
    """The Ogg Opus file with another input rate in its OpusHead (RFC 7845 section 5.1: informational, the
    packets are unchanged) and the first page's CRC recomputed, so libogg still accepts the page."""
    segments = data[26]
    page_end = 27 + segments + sum(data[27 : 27 + segments])
    patched = bytearray(data)
    patched[27 + segments + 12 : 27 + segments + 16] = struct.pack("<I", input_rate)
    patched[22:26] = b"\0\0\0\0"
    patched[22:26] = struct.pack("<I", _ogg_crc(bytes(patched[:page_end])))
    return bytes(patched)


@pytest.mark.parametrize("input_rate", [0, 6_000, 11_025, 12_000, 22_050, 44_100])
def test_an_opus_rate_is_the_one_the_decoder_outputs_not_the_input_rate(input_rate):
    """libsndfile decodes at the lowest Opus rate at or above the input rate: a 6 kHz recording is read at
    8 kHz (so the header path accepts what decoding accepts), a 22.05 kHz one at 24 kHz."""
    data = with_opus_input_rate(tone(1.0, 8_000, "OGG", "OPUS"), input_rate)
    header = audio_header(data)
    info = soundfile.info(io.BytesIO(data))
    assert header.sample_rate == info.samplerate
    assert header.seconds == pytest.approx(info.duration, abs=1e-3)


@pytest.mark.parametrize(
    ("container", "subtype", "rate", "name"),
    [
        ("OGG", "VORBIS", 16_000, "long.ogg"),
        ("OGG", "OPUS", 16_000, "long.opus"),
        ("MP3", "MPEG_LAYER_III", 16_000, "long.mp3"),
    ],
)
def test_an_uploaded_long_ogg_or_mp3_is_refused_from_its_header(tmp_path, container, subtype, rate, name):
    """31 s is over the 30 s limit: refused from the last page's granule (OGG, in the object's tail) or
    the Xing frame count."""
    data = tone(31.0, rate, container, subtype)
    (tmp_path / name).write_bytes(data)
    store = CountingStore()
    report = media_object_report((tmp_path / name).as_uri(), store)
    assert not report.ok and report.error_counts == {"audio_too_long": 1}
    assert "31.0 s is over 30 s" in report.errors[0].message
    assert len(store.ranges) == (2 if len(data) > HEADER_BYTES else 1)  # the first 64 KiB, the OGG's tail


def test_an_mp3_behind_a_large_id3_tag_and_a_constant_bitrate_one():
    """Cover art (a 200 KB ID3v2 tag) before the first frame; a CBR stream without a Xing header: its
    length is its bytes over the bitrate."""
    mp3 = tone(2.0, 44_100, "MP3", "MPEG_LAYER_III")
    size = 200_000
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    tagged = b"ID3\x04\x00\x00" + syncsafe + bytes(size) + mp3
    reads: list[int] = []

    def read_at(start: int, length: int) -> bytes:
        reads.append(start)
        return tagged[start : start + length]

    header = audio_header(Window(tagged[:HEADER_BYTES], len(tagged), read_at))
    assert header.seconds == pytest.approx(2.0, abs=1e-3) and reads == [10 + size]
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, mono: 1531 frames of 417 bytes
    cbr = (bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(413)) * 1531
    header = audio_header(cbr)
    assert (header.sample_rate, header.channels) == (44_100, 1)
    assert header.seconds == pytest.approx(soundfile.info(io.BytesIO(cbr)).duration, abs=0.1)


def test_an_ogg_without_a_sound_last_page_is_left_to_the_decoder():
    """Only the end-of-stream page whose CRC holds gives the length: a damaged or cut-off last page gives
    none (an earlier page would understate it), and the decoder in training counts."""
    data = tone(2.0, 16_000, "OGG", "VORBIS")
    last = data.rfind(b"OggS")
    damaged = data[: last + 30] + bytes([data[last + 30] ^ 0xFF]) + data[last + 31 :]
    assert audio_header(data).seconds == pytest.approx(2.0)
    assert audio_header(damaged).seconds is None and audio_header(data[:last]).seconds is None
    assert audio_header(damaged).sample_rate == 16_000


def test_record_checks_read_past_the_head_at_the_version_read(tmp_path):
    """Header-only record checks (the Lambda's): a phone photo passes and a 31 s Opus clip is refused,
    each read past its first 64 KiB with ranged reads of the version validation pinned."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/phone.jpg").write_bytes(phone_jpeg())
    (tmp_path / "long.opus").write_bytes(tone(31.0, 16_000, "OGG", "OPUS"))
    store = CountingStore()
    checker = MediaChecker(store, decode=False)
    records = (tmp_path / "train.jsonl").resolve().as_uri()
    photo = {"messages": [{"role": "user", "content": [{"type": "image", "image": "photos/phone.jpg"}]}]}
    assert checker.check(records, 1, photo, "multimodal") == [] and checker.images == 1
    assert len(store.ranges) == 2  # the second ICC segment's marker, then the frame header
    problems = checker.check(records, 2, {"audio": "long.opus", "text": "x"}, "speech")
    assert [(path, code) for path, code, _ in problems] == [("$.audio", "audio_too_long")]
    assert "31.0 s is over 30 s" in problems[0][2] and len(store.ranges) == 3  # the last page
