"""Object keys arriving in S3 events: decoded, checked, classified.

An event's key is attacker-controllable input (anyone who can upload chooses it), so anything that is
not plainly under ``jobs/`` or ``datasets/`` is refused before it becomes part of a path or a URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from trainforge.errors import UnsafeKey

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JOB = re.compile(r"^jobs/([a-z0-9][a-z0-9-]{0,39})\.(yaml|yml|json)$")
_DATASET = re.compile(r"^datasets/([A-Za-z0-9][A-Za-z0-9._-]{0,99})/.+$")


@dataclass(frozen=True)
class UploadedKey:
    kind: Literal["job", "dataset"]
    key: str
    #: the job name for jobs/NAME.yaml, the dataset name for datasets/NAME/...
    name: str


def classify_key(raw_key: str, *, encoded: bool = True) -> UploadedKey:
    """Decode (S3 event keys are URL-encoded, '+' for space) and classify, or raise UnsafeKey."""
    key = unquote_plus(raw_key) if encoded else raw_key
    if _CONTROL.search(key):
        raise UnsafeKey(f"object key {key!r} contains control characters")
    if key.startswith("/") or any(part in ("..", ".") for part in key.split("/")):
        raise UnsafeKey(f"object key {key!r} contains a relative path segment")
    if job := _JOB.match(key):
        return UploadedKey("job", key, job.group(1))
    if dataset := _DATASET.match(key):
        return UploadedKey("dataset", key, dataset.group(1))
    if key.startswith("jobs/"):
        raise UnsafeKey(
            f"job spec key {key!r} must be jobs/NAME.yaml|yml|json with NAME of lowercase letters, digits, '-'"
        )
    raise UnsafeKey(f"object key {key!r} is outside the accepted prefixes jobs/ and datasets/")
