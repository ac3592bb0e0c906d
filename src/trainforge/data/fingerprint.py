"""The identity of an example: one normalisation shared by de-duplication and the train/validation split."""

from __future__ import annotations

import hashlib


def normalise(text: str) -> str:
    """Case-insensitive form with outer whitespace stripped. (Collapsing inner whitespace as well cost more
    than the rest of validation put together; near-duplicate detection catches re-spaced copies.)"""
    return text.lower().strip()


def example_digest(normal: str) -> bytes:
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest()
