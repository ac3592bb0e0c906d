"""Files between moto S3 and a container's folders."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.twin import storage


@pytest.fixture
def s3(aws_env):
    with mock_aws():
        client = storage.client("s3", "us-east-1")
        client.create_bucket(Bucket="bucket")
        yield client


def test_a_prefix_downloads_with_relative_paths_kept(s3, tmp_path):
    for key in ("data/train/a.jsonl", "data/train/sub/b.jsonl", "data/trainer.txt", "data/train/folder/"):
        s3.put_object(Bucket="bucket", Key=key, Body=b"x")

    count = storage.download_prefix(s3, "s3://bucket/data/train/", tmp_path / "train")

    assert count == 2
    assert sorted(
        p.relative_to(tmp_path / "train").as_posix() for p in (tmp_path / "train").rglob("*") if p.is_file()
    ) == ["a.jsonl", "sub/b.jsonl"]


def test_a_continuous_sync_uploads_only_new_or_changed_files(s3, tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "one").write_text("1")
    seen: dict = {}

    first = storage.upload_tree(s3, tmp_path / "ckpt", "s3://bucket/ckpt", seen)
    (tmp_path / "ckpt" / "two").write_text("2")
    second = storage.upload_tree(s3, tmp_path / "ckpt", "s3://bucket/ckpt", seen)

    assert (first, second) == (1, 1)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="bucket")["Contents"]) == ["ckpt/one", "ckpt/two"]


def test_a_tarball_round_trips(s3, tmp_path):
    (tmp_path / "model" / "nested").mkdir(parents=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "nested" / "w.bin").write_bytes(b"\0\1")

    storage.upload_tarball(s3, tmp_path / "model", "s3://bucket/out/model.tar.gz")
    storage.download_tarball(s3, "s3://bucket/out/model.tar.gz", tmp_path / "back")

    assert (tmp_path / "back" / "config.json").read_text() == "{}"
    assert (tmp_path / "back" / "nested" / "w.bin").read_bytes() == b"\0\1"
    assert boto3.client("s3").head_object(Bucket="bucket", Key="out/model.tar.gz")["ContentLength"] > 0
