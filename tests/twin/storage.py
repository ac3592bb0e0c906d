"""Moving files between moto S3 and a container's folders, the way SageMaker moves them: every object
under an ``S3Prefix`` lands at its key relative to the prefix; outputs go up as files or as a tar.gz.

Reference (S3Prefix): https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3DataSource.html
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

import boto3


def client(service: str, region: str) -> Any:
    """A client of moto's in-process AWS, independent of the test's environment variables."""
    return boto3.client(service, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


def split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def keys(s3: Any, uri: str) -> list[str]:
    bucket, prefix = split(uri)
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return found


def download_prefix(s3: Any, uri: str, target: Path) -> int:
    """Every object under ``uri`` into ``target`` at its key relative to the prefix; returns the count."""
    bucket, prefix = split(uri)
    count = 0
    for key in keys(s3, uri):
        relative = key[len(prefix) :].lstrip("/") or Path(key).name
        if key.endswith("/"):  # a folder marker object
            continue
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(path))
        count += 1
    target.mkdir(parents=True, exist_ok=True)
    return count


def download_tarball(s3: Any, uri: str, target: Path) -> None:
    """A ``model.tar.gz`` (``ModelDataUrl``, ``CompressionType: Gzip``) unpacked into ``target``."""
    bucket, key = split(uri)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "model.tar.gz"
        s3.download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")


def upload_tree(s3: Any, folder: Path, uri: str, changed_since: dict[Path, float] | None = None) -> int:
    """Each file under ``folder`` to ``uri`` + its relative path. With ``changed_since`` (path -> mtime,
    updated in place) only new or modified files go up, as a continuous sync does."""
    bucket, prefix = split(uri.rstrip("/") + "/")
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if changed_since is not None:
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # deleted by the container while we walk
                continue
            if changed_since.get(path) == mtime:
                continue
            changed_since[path] = mtime
        try:
            s3.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
        except FileNotFoundError:
            continue
        count += 1
    return count


def upload_tarball(s3: Any, folder: Path, uri: str) -> None:
    """``folder``'s contents as one gzipped tar at ``uri`` (SageMaker's ``model.tar.gz``)."""
    bucket, key = split(uri)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "archive.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
        s3.upload_file(str(archive), bucket, key)
