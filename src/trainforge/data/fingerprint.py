"""The identity of an example: one normalisation shared by de-duplication and the train/validation split."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable


def normalise(text: str) -> str:
    """Case-insensitive form with outer whitespace stripped. (Collapsing inner whitespace as well cost more
    than the rest of validation put together; near-duplicate detection catches re-spaced copies.)"""
    return text.lower().strip()


def content_fingerprint(file_digests: Iterable[str]) -> str:
    """The content of a dataset: one hash over its files' sha256, independent of their names, versions and
    order. The retrain schedule compares it with the last successful run's."""
    return hashlib.sha256(json.dumps(sorted(file_digests)).encode()).hexdigest()


def example_digest(normal: str) -> bytes:
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest()
