"""Deterministic train/validation split by example hash.

Assigning by a hash of the example's normalised text (not by position) means the split does not change
when files are reordered or appended to, and exact duplicates always land on the same side, so the
validation loss never measures memorised copies of training rows.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from trainforge.contracts import DataFormat
from trainforge.data.fingerprint import example_digest, normalise
from trainforge.data.formats import texts


def assign_split(digest: bytes, seed: int, validation_fraction: float) -> Literal["train", "validation"]:
    keyed = hashlib.blake2b(digest, digest_size=8, key=seed.to_bytes(8, "little", signed=True)).digest()
    position = int.from_bytes(keyed, "little") / 2**64
    return "validation" if position < validation_fraction else "train"


def split_records(
    records: list[dict[str, Any]], fmt: DataFormat, seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) exactly as the validation report counted them and the trainer held them out."""
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    for record in records:
        digest = example_digest(normalise("\x1f".join(texts(record, fmt))))
        (validation if assign_split(digest, seed, fraction) == "validation" else train).append(record)
    return train, validation
