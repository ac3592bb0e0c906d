"""The validate_upload Lambda against moto S3: a real object, a real EventBridge event, the real handler."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tests.conftest import FakeContext, chat, load_handler, s3_event

DATA, ARTIFACTS = "tf-data", "tf-artifacts"


@pytest.fixture
def s3(aws_env, monkeypatch):
    with mock_aws():
        client = boto3.client("s3")
        for bucket in (DATA, ARTIFACTS):
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=DATA, VersioningConfiguration={"Status": "Enabled"})
        monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{ARTIFACTS}")
        yield client


def put(s3, key: str, body: bytes) -> str:
    return s3.put_object(Bucket=DATA, Key=key, Body=body)["VersionId"]


def test_dataset_upload_report_lands_and_source_is_untouched(s3):
    # Given a dataset with one bad line uploaded under a key with a space
    key = "datasets/support/train 2026.jsonl"
    body = (json.dumps(chat()) + "\n" + json.dumps({"messages": []}) + "\n").encode()
    version = put(s3, key, body)
    handler = load_handler("validate_upload")
    # When the S3 event reaches the handler
    result = handler(s3_event(DATA, key, version, len(body)), FakeContext())
    # Then the report is in the artifacts bucket and points at the line
    assert result["ok"] is False
    report_key = f"reports/{key}.json"
    assert result["report_uri"] == f"s3://{ARTIFACTS}/{report_key}"
    stored = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=report_key)["Body"].read())
    assert stored["errors"][0]["line"] == 2 and stored["errors"][0]["field"] == "$.messages"
    assert (
        s3.get_object(Bucket=ARTIFACTS, Key=f"reports/{key}".removesuffix(".json") + ".md")["Body"]
        .read()
        .startswith(b"# Dataset report")
    )
    # And the source object's bytes and version are unchanged, with no new version
    versions = s3.list_object_versions(Bucket=DATA, Prefix=key)["Versions"]
    assert [v["VersionId"] for v in versions] == [version]
    assert s3.get_object(Bucket=DATA, Key=key)["Body"].read() == body


def test_reads_the_version_the_event_names(s3):
    key = "datasets/support/train.jsonl"
    first = put(s3, key, (json.dumps(chat()) + "\n").encode())
    put(s3, key, b"{broken\n")
    result = load_handler("validate_upload")(s3_event(DATA, key, first), FakeContext())
    assert result["ok"] is True


def test_job_spec_upload_is_checked_with_lines(s3):
    key = "jobs/support.yaml"
    version = put(s3, key, b"name: support\nbase_model: lite\ndata:\n  train: datasets/support/\n  formt: chat\n")
    result = load_handler("validate_upload")(s3_event(DATA, key, version), FakeContext())
    assert result["ok"] is False
    assert result["errors"][0]["line"] == 5 and result["errors"][0]["field"] == "data.formt"


@pytest.mark.parametrize(
    "key", ["datasets/../jobs/x.yaml", "other/x.jsonl", "datasets/a/b\x01.jsonl", "jobs/Bad Name.yaml"]
)
def test_unsafe_keys_are_refused(s3, key):
    from trainforge.errors import UnsafeKey

    with pytest.raises(UnsafeKey):
        load_handler("validate_upload")(s3_event(DATA, key, None), FakeContext())


def test_objects_over_the_function_budget_are_refused_not_read(s3, monkeypatch):
    monkeypatch.setenv("TRAINFORGE_MAX_OBJECT_BYTES", "100")
    key = "datasets/support/big.jsonl"
    version = put(s3, key, (json.dumps(chat()) + "\n").encode() * 10)
    result = load_handler("validate_upload")(s3_event(DATA, key, version), FakeContext())
    assert result["ok"] is False and result["errors"][0]["code"] == "file_too_large"
    assert result["bytes_read"] == 0


def test_an_uploaded_image_or_clip_is_judged_from_its_header(s3):
    """The Lambda has no decoder: a 50k x 50k PNG header is refused without decoding, a sound WAV passes."""
    import io
    import struct
    import zlib

    import numpy as np
    import soundfile

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    clip = io.BytesIO()
    soundfile.write(clip, np.zeros(8000, dtype=np.float32), 16_000, format="WAV")
    handler = load_handler("validate_upload")
    for key, body, ok in (
        ("datasets/shop/photos/bomb.png", bomb, False),
        ("datasets/calls/a.wav", clip.getvalue(), True),
    ):
        result = handler(s3_event(DATA, key, put(s3, key, body), len(body)), FakeContext())
        assert result["ok"] is ok and result["files"][0].startswith(f"s3://{DATA}/{key}")
    stored = json.loads(
        s3.get_object(Bucket=ARTIFACTS, Key="reports/datasets/shop/photos/bomb.png.json")["Body"].read()
    )
    assert stored["errors"][0]["code"] == "image_too_large"


def test_header_checks_read_past_the_first_64_kib_at_the_pinned_version(s3):
    """A phone photo's frame header behind 100 KiB of ICC profile is found with ranged GetObjects of the
    version the event names; a 45 s Opus clip is refused from its last page, read from the object's tail."""
    import io

    import numpy as np
    import soundfile
    from PIL import Image

    photo = io.BytesIO()
    profile = np.random.default_rng(0).integers(0, 256, 100 * 1024, dtype=np.uint8).tobytes()
    Image.new("RGB", (40, 30), "red").save(photo, "JPEG", icc_profile=profile)
    clip = io.BytesIO()
    soundfile.write(clip, np.zeros(45 * 16_000, dtype=np.float32), 16_000, format="OGG", subtype="OPUS")
    handler = load_handler("validate_upload")
    key = "datasets/shop/photos/phone.jpg"
    version = put(s3, key, photo.getvalue())
    put(s3, key, b"overwritten since")  # a newer version: the event's one is read
    result = handler(s3_event(DATA, key, version, len(photo.getvalue())), FakeContext())
    assert result["ok"] is True and result["bytes_read"] < len(photo.getvalue())
    key = "datasets/calls/long.opus"
    result = handler(s3_event(DATA, key, put(s3, key, clip.getvalue()), len(clip.getvalue())), FakeContext())
    assert result["ok"] is False and result["error_counts"] == {"audio_too_long": 1}


def test_a_text_format_for_a_speech_base_is_refused_at_the_spec(s3):
    key = "jobs/calls.yaml"
    spec = b"name: calls\nbase_model: speech\ndata:\n  train: datasets/calls/\n  format: chat\n"
    result = load_handler("validate_upload")(s3_event(DATA, key, put(s3, key, spec)), FakeContext())
    assert result["ok"] is False
    assert [(error["field"], error["code"]) for error in result["errors"]] == [
        ("data.format", "format_not_for_base_model")
    ]
    assert "data.format speech" in result["errors"][0]["message"]
