"""Stores: the same interface for file:// and s3:// (moto), streaming reads, atomic writes."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from trainforge.errors import StoreError, UsageError
from trainforge.store import join, open_store, to_uri


def exercise(store, root: str) -> None:
    store.write_bytes(join(root, "a/b.json"), b'{"x": 1}')
    store.write_bytes(join(root, "a/c.txt"), b"hello")
    assert store.read_bytes(join(root, "a/b.json")) == b'{"x": 1}'
    with store.open(join(root, "a/c.txt")) as handle:
        assert handle.read(2) == b"he"
    assert store.read_range(join(root, "a/c.txt"), 1, 3) == b"ell"
    assert store.read_range(join(root, "a/c.txt"), 3, 10) == b"lo"
    assert store.read_range(join(root, "a/c.txt"), 5, 4) == b""  # past the end (S3: InvalidRange)
    info = store.head(join(root, "a/c.txt"))
    assert info.size == 5
    assert [i.uri.rsplit("/", 1)[-1] for i in store.list(join(root, "a"))] == ["b.json", "c.txt"]
    assert store.exists(join(root, "a/b.json")) and not store.exists(join(root, "nope"))
    with pytest.raises(StoreError):
        store.read_bytes(join(root, "nope"))


def test_file_store(tmp_path):
    root = tmp_path.as_uri()
    exercise(open_store(root), root)


@mock_aws
def test_s3_store():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt")
    s3.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
    exercise(open_store("s3://bkt/"), "s3://bkt/root")
    assert open_store("s3://bkt/").head("s3://bkt/root/a/c.txt").version_id


def test_uris():
    assert join("s3://b/", "/x/", "y") == "s3://b/x/y"
    assert to_uri("relative/path").startswith("file:///")
    with pytest.raises(UsageError, match="gs"):
        open_store("gs://bucket/x")
