"""The speech and multimodal formats through the dataset validator: each bad medium is rejected with its
file, line and field, the good ones counted (hours, images), and the Lambda's header-only mode refuses
what the header already says is wrong."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from trainforge.catalog import base_modality
from trainforge.data.validation import ValidationOptions, validate_dataset
from trainforge.local.file_store import FileStore
from trainforge.media.checks import MediaChecker
from trainforge.media.decode import decode_audio, resample
from trainforge.media.headers import MediaError, audio_header, image_header


def wav(path: Path, seconds: float = 0.5, rate: int = 16_000, channels: int = 1, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([tone] * channels, axis=1), rate)
    return path


def png(path: Path, size: tuple[int, int] = (32, 32), color: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def bomb_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG signature and IHDR declaring width x height RGB pixels, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def validate(folder: Path, rows: list[dict], **options) -> tuple:
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = validate_dataset([path.as_uri()], FileStore(), ValidationOptions(**options))
    return report, {(issue.line, issue.field, issue.code) for issue in report.errors}, path.resolve().as_uri()


def test_speech_records_each_bad_medium_named_by_file_line_and_field(tmp_path):
    wav(tmp_path / "clips/good.wav", seconds=1.0)
    wav(tmp_path / "clips/stereo44k.wav", seconds=0.5, rate=44_100, channels=2)
    wav(tmp_path / "clips/lowrate.wav", rate=4_000)
    wav(tmp_path / "clips/empty.wav", seconds=0.0)
    (tmp_path / "clips/broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (tmp_path / "clips/copy.wav").write_bytes((tmp_path / "clips/good.wav").read_bytes())
    rows = [
        {"audio": "clips/good.wav", "text": "a tone", "language": "en"},
        {"audio": "clips/stereo44k.wav", "text": "resampled and mixed down"},
        {"audio": "clips/missing.wav", "text": "x"},
        {"audio": "clips/broken.wav", "text": "x"},
        {"audio": "clips/empty.wav", "text": "x"},
        {"audio": "clips/lowrate.wav", "text": "x"},
        {"audio": (tmp_path / "clips/good.wav").as_uri(), "text": "a URI, which Prepare would not copy"},
        {"audio": "clips/good.wav", "text": ""},
        {"audio": "clips/copy.wav", "text": "the same bytes again"},
    ]
    report, errors, uri = validate(tmp_path, rows)
    assert not report.ok and report.format == "speech" and report.format_detected
    assert errors == {
        (3, "$.audio", "media_not_found"),
        (4, "$.audio", "undecodable_media"),
        (5, "$.audio", "empty_audio"),
        (6, "$.audio", "wrong_sample_rate"),
        (7, "$.audio", "media_outside_store"),
        (8, "$.text", "empty_content"),
    }
    assert {issue.file for issue in report.errors} == {uri}
    outside = next(issue for issue in report.errors if issue.code == "media_outside_store")
    assert "use a key relative to the records file's folder" in outside.message
    assert report.valid_records == 3
    assert report.audio_hours == pytest.approx(2.5 / 3600, rel=1e-3)  # 1 s + 0.5 s + the 1 s copy
    assert any("same bytes" in warning for warning in report.warnings)


def test_multimodal_images_bomb_count_and_data_uri(tmp_path):
    png(tmp_path / "shapes/red.png")
    (tmp_path / "shapes/bomb.png").write_bytes(bomb_header())
    (tmp_path / "shapes/not-an-image.png").write_bytes(b"hello")
    inline = "data:image/png;base64," + base64.b64encode((tmp_path / "shapes/red.png").read_bytes()).decode()

    def ask(*parts: dict) -> dict:
        content = [*parts, {"type": "text", "text": "What shape?"}]
        return {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "A square."}]}

    rows = [
        ask({"type": "image", "image": "shapes/red.png"}),
        ask({"type": "image_url", "image_url": {"url": inline}}),
        ask({"type": "image", "image": "shapes/bomb.png"}),
        ask({"type": "image", "image": "shapes/not-an-image.png"}),
        ask(*[{"type": "image", "image": "shapes/red.png"}] * 9),
    ]
    report, errors, _ = validate(tmp_path, rows)
    assert report.format == "multimodal"
    assert errors == {
        (3, "$.messages[0].content[0].image", "image_too_large"),
        (4, "$.messages[0].content[0].image", "unsupported_media"),
        (5, "$.messages", "too_many_images"),
    }
    assert report.images == 2 + 9  # the valid records' images (the ninth-image record counts what decoded)


def test_an_image_part_in_a_text_only_tier_is_refused(tmp_path):
    png(tmp_path / "shapes/red.png")
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "image": "shapes/red.png"}]},
            {"role": "assistant", "content": "hello"},
        ]
    }
    as_chat, errors, _ = validate(tmp_path, [row], format="chat")
    assert not as_chat.ok and errors == {(1, "$.messages[0].content[1]", "image_in_text_tier")}
    for_lite, errors, _ = validate(tmp_path, [row], modality=base_modality("lite"))
    assert for_lite.format == "multimodal" and errors == {
        (1, "$.messages[0].content[1]", "image_in_text_tier"),
        (None, "data.format", "format_not_for_base_model"),  # the dataset's format, for the spec's base model
    }
    assert validate(tmp_path, [row], modality=base_modality("multimodal"))[0].ok
    assert base_modality("speech") == "speech" and base_modality("s3://bucket/base-models/mine/") is None


def test_header_only_mode_as_in_the_lambda(tmp_path):
    """No decoder: the header still refuses the bomb, the low sample rate and the missing file."""
    wav(tmp_path / "a/lowrate.wav", rate=4_000)
    (tmp_path / "a/bomb.png").write_bytes(bomb_header())
    checker = MediaChecker(FileStore(), decode=False)
    records = (tmp_path / "train.jsonl").resolve().as_uri()
    assert checker.check(records, 1, {"audio": "a/lowrate.wav", "text": "x"}, "speech")[0][1] == "wrong_sample_rate"
    assert checker.check(records, 2, {"audio": "a/none.wav", "text": "x"}, "speech")[0][1] == "media_not_found"
    bomb = {"messages": [{"role": "user", "content": [{"type": "image", "image": "a/bomb.png"}]}]}
    assert checker.check(records, 3, bomb, "multimodal") == [
        ("$.messages[0].content[0].image", "image_too_large", checker.check(records, 3, bomb, "multimodal")[0][2])
    ]


def test_headers_and_decoding(tmp_path):
    assert image_header(bomb_header()).width == 50_000  # read from 33 bytes: nothing allocated
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 30)).save(jpeg, "JPEG")
    assert (image_header(jpeg.getvalue()).width, image_header(jpeg.getvalue()).height) == (40, 30)
    header = audio_header(wav(tmp_path / "x.wav", seconds=0.25, rate=22_050, channels=2).read_bytes())
    assert (header.sample_rate, header.channels, header.frames) == (22_050, 2, 5512)
    flac = tmp_path / "x.flac"
    soundfile.write(flac, np.zeros(8000, dtype=np.float32), 8000)
    assert audio_header(flac.read_bytes()).seconds == pytest.approx(1.0)
    audio = decode_audio((tmp_path / "x.wav").read_bytes())
    assert audio.sample_rate == 22_050 and audio.channels == 2 and len(audio.samples) == 4000
    with pytest.raises(MediaError, match="not a WAV"):
        audio_header(b"garbage!")


def test_resampling_keeps_the_tone():
    rate = 44_100
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    out = resample(tone, rate)
    assert len(out) == 16_000
    assert np.argmax(np.abs(np.fft.rfft(out))) == 440  # 1 s of signal: bin index = Hz


def test_references_stay_in_the_dataset_store_and_prepare_copies_the_keys(tmp_path):
    from trainforge.media.manifest import copy_media
    from trainforge.media.references import read_medium, referenced_keys, resolve

    records = "s3://data/datasets/calls/train.jsonl"
    assert resolve("clips/a.wav", records) == "s3://data/datasets/calls/clips/a.wav"
    assert resolve("clips/old/../a.wav", records) == "s3://data/datasets/calls/clips/a.wav"
    refused = [
        "s3://data/datasets/calls/clips/a.wav",  # a URI, even in the folder: Prepare copies keys only
        "s3://data/other/a.wav",
        "file:///data/root/../../etc/hostname",
        "https://example.com/a.wav",
        "../secrets/a.wav",
        "clips/../../secrets/a.wav",
        "%2e%2e/%2e%2e/etc/hostname",
        "/etc/passwd",
    ]
    for outside in refused:
        with pytest.raises(MediaError) as error:
            resolve(outside, records)
        assert error.value.code == "media_outside_store"
    wav(tmp_path / "src/clips/a.wav")
    png(tmp_path / "src/shapes/b.png")
    rows = [
        {"audio": "clips/a.wav", "text": "x"},
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "shapes/b.png"}]}]},
        {"audio": "clips/a.wav", "text": "again"},
    ]
    source = tmp_path / "src/train.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows) + "not json\n")
    assert referenced_keys(source.read_bytes().splitlines()) == ["clips/a.wav", "shapes/b.png"]
    target = tmp_path / "run/data/train/train.jsonl"
    read = [read_medium(key, source.as_uri(), FileStore(), 1 << 20)[1] for key in ["clips/a.wav", "shapes/b.png"]]
    validated = {entry.uri: entry for entry in read if entry is not None}
    assert copy_media(source.as_uri(), source.as_uri(), target.as_uri(), FileStore(), validated) == 2
    assert (tmp_path / "run/data/train/clips/a.wav").read_bytes() == (tmp_path / "src/clips/a.wav").read_bytes()


@pytest.mark.parametrize(
    ("container", "subtype", "rate"),
    [("MP3", "MPEG_LAYER_III", 44_100), ("OGG", "VORBIS", 44_100), ("OGG", "OPUS", 48_000)],
)
def test_compressed_audio_decodes_to_16k_mono(container, subtype, rate):
    """libsndfile >= 1.1 (the soundfile wheel ships 1.2.2) decodes MP3, Vorbis and Opus: no ffmpeg needed."""
    encoded = io.BytesIO()
    soundfile.write(
        encoded, (0.3 * np.sin(np.arange(rate) / 10)).astype(np.float32), rate, format=container, subtype=subtype
    )
    audio = decode_audio(encoded.getvalue())
    assert audio.sample_rate == rate and audio.seconds == pytest.approx(1.0, abs=0.01)
    assert audio_header(encoded.getvalue()).format == container.lower()


def test_a_long_compressed_file_is_refused_before_it_decodes():
    """120 s of Vorbis fit in 11 KB but decode to 7.7 MB: the decoder's header refuses it first."""
    import tracemalloc

    encoded = io.BytesIO()
    with soundfile.SoundFile(encoded, "w", 16_000, 1, format="OGG", subtype="VORBIS") as sink:
        for _ in range(120):
            sink.write(np.zeros(16_000, dtype=np.float32))
    tracemalloc.start()
    try:
        with pytest.raises(MediaError) as error:
            decode_audio(encoded.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.value.code == "audio_too_long" and peak < 2**20


def flac_of_unknown_length(seconds: float, rate: int = 8_000) -> bytes:
    """A FLAC whose STREAMINFO says 0 samples: an encoder that did not know the length (RFC 9639 8.2)."""
    encoded = io.BytesIO()
    soundfile.write(
        encoded, (0.3 * np.sin(np.arange(int(seconds * rate)) / 10)).astype(np.float32), rate, format="FLAC"
    )
    data = bytearray(encoded.getvalue())
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~0xFFFFFFFFF).to_bytes(8, "big")
    return bytes(data)


def test_a_flac_of_unknown_length_is_counted_in_bounded_reads():
    assert audio_header(flac_of_unknown_length(1.0)).seconds is None
    assert decode_audio(flac_of_unknown_length(1.0)).seconds == pytest.approx(1.0)
    with pytest.raises(MediaError) as error:
        decode_audio(flac_of_unknown_length(45.0))
    assert error.value.code == "audio_too_long"


def test_an_oversized_data_uri_is_refused_before_it_decodes(monkeypatch):
    from trainforge.media import references

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(references.base64, "b64decode", no_decoding)
    with pytest.raises(MediaError) as error:
        references.data_uri("data:image/png;base64," + "A" * 32, limit=20)  # 24 bytes
    assert error.value.code == "media_too_large"
