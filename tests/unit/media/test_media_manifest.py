"""The media manifest: validation pins every medium a valid record names (version and sha256, in the whole
pass, in header-only mode and in each shard), Prepare copies exactly those versions and refuses a changed
file (local store and versioned S3), and duplicate audio is found across shards by the real shard/merge."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.unit.media.test_media_validation import wav
from trainforge.aws.s3_store import S3Store
from trainforge.contracts import DatasetReport
from trainforge.data.partial import PartialReport, merge_partials, validate_shard
from trainforge.data.shards import plan_shards
from trainforge.data.validation import ValidationOptions, validate_dataset
from trainforge.errors import DatasetRejected
from trainforge.local.file_store import FileStore
from trainforge.media.checks import MediaChecker
from trainforge.media.manifest import copy_media, read_manifest
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.validation_fanout import accept_or_reject
from trainforge.spec import DataLimits
from trainforge.store import pin_version


def _records(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path.resolve().as_uri()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_validation_pins_each_medium_and_prepare_copies_that_version(tmp_path):
    data = tmp_path / "data"
    clips = [wav(data / f"clips/{name}.wav", seconds=0.3, hz=hz) for name, hz in (("a", 300.0), ("b", 500.0))]
    rows = [{"audio": "clips/a.wav", "text": "one"}, {"audio": "clips/b.wav", "text": "two"}]
    records = _records(data / "train.jsonl", [*rows, {"audio": "clips/a.wav", "text": "again"}])
    report = validate_dataset([records], FileStore(), ValidationOptions(format="speech"))
    assert report.ok
    by_uri = {entry.uri: entry for entry in report.media}
    assert [(Path(uri).name, entry.line) for uri, entry in by_uri.items()] == [("a.wav", 1), ("b.wav", 2)]
    for clip in clips:
        entry = by_uri[clip.resolve().as_uri()]
        assert entry.sha256 == _sha(clip) and entry.size == clip.stat().st_size
        assert entry.version_id == FileStore().head(clip.as_uri()).version_id and entry.file == records

    stored = accept_or_reject(report, RunLayout((tmp_path / "artifacts").as_uri(), "run-1"))
    assert stored.media_manifest_uri is not None and "media" not in json.loads(stored.model_dump_json())
    assert DatasetReport.model_validate_json(stored.model_dump_json()).media_manifest_uri == stored.media_manifest_uri
    validated = read_manifest(FileStore(), stored.media_manifest_uri)
    assert validated == by_uri

    target = (tmp_path / "run/train/train.jsonl").as_uri()
    assert copy_media(records, records, target, FileStore(), validated) == 2
    assert (tmp_path / "run/train/clips/b.wav").read_bytes() == clips[1].read_bytes()


def test_prepare_refuses_a_local_file_changed_after_validation(tmp_path):
    data = tmp_path / "data"
    clip = wav(data / "clips/a.wav", seconds=0.3, hz=300.0)
    records = _records(data / "train.jsonl", [{"audio": "clips/a.wav", "text": "one"}])
    report = validate_dataset([records], FileStore(), ValidationOptions(format="speech"))
    validated = {entry.uri: entry for entry in report.media}
    target = (tmp_path / "run/train.jsonl").as_uri()

    before = clip.stat()
    wav(clip, seconds=0.3, hz=900.0)  # the same size, other bytes: a new mtime, so a new version
    with pytest.raises(DatasetRejected) as refused:
        copy_media(records, records, target, FileStore(), validated)
    assert "'clips/a.wav'" in refused.value.message and "line 1" in refused.value.message
    assert report.media[0].version_id in refused.value.message
    assert FileStore().head(clip.as_uri()).version_id in refused.value.message

    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))  # the version says unchanged; the bytes differ
    with pytest.raises(DatasetRejected) as refused:
        copy_media(records, records, target, FileStore(), validated)
    assert report.media[0].sha256 in refused.value.message and _sha(clip) in refused.value.message

    with pytest.raises(DatasetRejected, match="not among the media validation read"):
        copy_media(records, records, target, FileStore(), {})


@mock_aws
def test_prepare_copies_the_pinned_s3_version_and_refuses_when_it_is_gone(tmp_path, aws_env):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    validated_bytes = wav(tmp_path / "a.wav", seconds=0.3, hz=300.0).read_bytes()
    s3.put_object(Bucket="data", Key="datasets/calls/clips/a.wav", Body=validated_bytes)
    line = json.dumps({"audio": "clips/a.wav", "text": "one"}).encode() + b"\n"
    put = s3.put_object(Bucket="data", Key="datasets/calls/train.jsonl", Body=line)
    records = "s3://data/datasets/calls/train.jsonl"
    pinned = pin_version(records, put["VersionId"])  # as admission pins the records
    store = S3Store(s3)

    report = validate_dataset([pinned], store, ValidationOptions(format="speech"))
    assert report.ok
    (entry,) = report.media
    assert entry.uri == "s3://data/datasets/calls/clips/a.wav" and entry.version_id
    assert entry.sha256 == hashlib.sha256(validated_bytes).hexdigest()

    s3.put_object(Bucket="data", Key="datasets/calls/clips/a.wav", Body=b"RIFF overwritten after validation")
    target = "s3://data/runs/r1/data/train/train.jsonl"
    assert copy_media(records, pinned, target, store, {entry.uri: entry}) == 1
    copied = s3.get_object(Bucket="data", Key="runs/r1/data/train/clips/a.wav")["Body"].read()
    assert copied == validated_bytes  # the validated version, not the newer one

    s3.delete_object(Bucket="data", Key="datasets/calls/clips/a.wav", VersionId=entry.version_id)
    with pytest.raises(DatasetRejected) as refused:
        copy_media(records, pinned, target, store, {entry.uri: entry})
    assert "'clips/a.wav'" in refused.value.message and entry.version_id in refused.value.message
    assert entry.sha256 in refused.value.message


def test_header_only_mode_hashes_the_whole_file(tmp_path):
    """The Lambda checks the first 64 KiB; its digest is still the whole file's, streamed a MiB at a time."""
    clip = wav(tmp_path / "clips/long.wav", seconds=12.0, rate=48_000)
    assert clip.stat().st_size > 1 << 20
    records = (tmp_path / "train.jsonl").resolve().as_uri()
    checker = MediaChecker(FileStore(), decode=False)
    assert checker.check(records, 1, {"audio": "clips/long.wav", "text": "x"}, "speech") == []
    (entry,) = checker.seen.objects.values()
    assert entry.sha256 == _sha(clip) and entry.size == clip.stat().st_size


def test_duplicate_audio_across_shards_is_merged_with_both_lines(tmp_path):
    data = tmp_path / "data"
    wav(data / "clips/a.wav", seconds=0.2, hz=300.0)
    (data / "clips/copy.wav").write_bytes((data / "clips/a.wav").read_bytes())
    pad = "x" * 150
    rows = [{"audio": "clips/a.wav", "text": f"first {pad}"}]
    for i in range(8):
        wav(data / f"clips/f{i}.wav", seconds=0.2, hz=400.0 + 50 * i)
        rows.append({"audio": f"clips/f{i}.wav", "text": f"filler {i} {pad}"})
    rows += [{"audio": "clips/copy.wav", "text": f"the same bytes {pad}"}]
    rows += [{"audio": "clips/f7.wav", "text": f"a copy within one shard, after the one across shards {pad}"}]
    records = _records(data / "train.jsonl", rows)
    options = ValidationOptions(format="speech", limits=DataLimits(max_line_bytes=400))
    plan = plan_shards([records], FileStore(), options, shard_bytes=800)
    spans = [shard for shard in plan.shards if shard.kind == "span"]
    assert len(spans) >= 2
    work = (tmp_path / "work").as_uri()
    partials = [
        PartialReport.from_bytes(validate_shard(shard, FileStore(), options, work).to_bytes()) for shard in plan.shards
    ]
    first, last = (
        next(p for p in partials if name in {Path(u).name for u in p.media.objects}) for name in ("a.wav", "copy.wav")
    )
    assert first.shard.index < last.shard.index and last.media.duplicates == 0  # no shard sees both

    merged = merge_partials(plan, partials, options)
    whole = validate_dataset([records], FileStore(), options)
    note = f"clips/copy.wav ({records} line 10) has the same bytes as the file of clips/a.wav ({records} line 1)"
    assert any(note in warning for warning in merged.warnings), merged.warnings
    assert [w for w in merged.warnings if "same bytes" in w] == [w for w in whole.warnings if "same bytes" in w]
    assert next(w for w in merged.warnings if "same bytes" in w).startswith("2 audio files")
    assert merged.media == whole.media and len(merged.media) == 10
