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
    # sha256 rather than blake2b: OpenSSL's runs on the CPU's SHA extensions, ~2.5x faster here
    return hashlib.sha256(normal.encode("utf-8")).digest()[:8]
