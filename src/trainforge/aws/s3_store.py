"""The S3 ObjectStore behind ``s3://`` URIs. Reads stream (``StreamingBody``), never load whole objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlparse

import boto3
from botocore.exceptions import ClientError

from trainforge.errors import StoreError
from trainforge.store import ObjectInfo


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _version_args(uri: str) -> dict[str, str]:
    """``s3://bucket/key?versionId=V`` pins one object version (what an upload event named)."""
    version = parse_qs(urlparse(uri).query).get("versionId")
    return {"VersionId": version[0]} if version else {}


class S3Store:
    def __init__(self, client: Any = None) -> None:
        # no SSE arguments: every TrainForge bucket encrypts with its customer-managed key by default
        self.client: Any = client or boto3.client("s3")

    def _fail(self, uri: str, exc: ClientError) -> StoreError:
        code = exc.response.get("Error", {}).get("Code", "Error")
        return StoreError(f"{uri}: {code}")

    def open(self, uri: str, start: int = 0) -> BinaryIO:
        bucket, key = split_s3(uri)
        ranged = {"Range": f"bytes={start}-"} if start else {}
        try:
            body = self.client.get_object(Bucket=bucket, Key=key, **_version_args(uri), **ranged)["Body"]
            return cast(BinaryIO, body)
        except ClientError as exc:
            raise self._fail(uri, exc) from exc

    def read_bytes(self, uri: str) -> bytes:
        with self.open(uri) as body:
            return body.read()

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """GetObject with ``Range: bytes=start-end`` (inclusive end; RFC 9110 section 14.1.2,
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax).
        A range that starts past the end is S3's InvalidRange (416): no bytes."""
        if length <= 0:
            return b""
        bucket, key = split_s3(uri)
        ranged = f"bytes={start}-{start + length - 1}"
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, Range=ranged, **_version_args(uri))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise self._fail(uri, exc) from exc
        with response["Body"] as body:
            return cast(bytes, body.read())

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = split_s3(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            raise self._fail(uri, exc) from exc

    def upload_file(self, path: Path, uri: str) -> None:
        bucket, key = split_s3(uri)
        self.client.upload_file(str(path), bucket, key)

    def download_file(self, uri: str, path: Path) -> None:
        bucket, key = split_s3(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(bucket, key, str(path))

    def copy(self, source_uri: str, target_uri: str) -> None:
        """Server-side; multipart above 8 MB (boto3's managed copy), so objects past CopyObject's 5 GB limit
        copy too."""
        bucket, key = split_s3(source_uri)
        target_bucket, target_key = split_s3(target_uri)
        try:
            self.client.copy({"Bucket": bucket, "Key": key, **_version_args(source_uri)}, target_bucket, target_key)
        except ClientError as exc:
            raise self._fail(source_uri, exc) from exc

    def head(self, uri: str) -> ObjectInfo:
        bucket, key = split_s3(uri)
        try:
            meta = self.client.head_object(Bucket=bucket, Key=key, **_version_args(uri))
        except ClientError as exc:
            raise self._fail(uri, exc) from exc
        return ObjectInfo(uri=uri, size=meta["ContentLength"], version_id=meta.get("VersionId"))

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        if _version_args(prefix_uri):  # one pinned version: the object itself
            yield self.head(prefix_uri)
            return
        bucket, prefix = split_s3(prefix_uri)
        if prefix and not prefix.endswith("/"):
            if self.exists(prefix_uri):  # a single object, not every key that starts like it
                yield self.head(prefix_uri)
                return
            prefix += "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield ObjectInfo(uri=f"s3://{bucket}/{obj['Key']}", size=obj["Size"], version_id=None)

    def exists(self, uri: str) -> bool:
        try:
            self.head(uri)
        except StoreError:
            return False
        return True
