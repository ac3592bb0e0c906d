"""Deterministic train/validation split by example hash.

Assigning by a hash of the example's normalised text (not by position) means the split does not change
when files are reordered or appended to, and exact duplicates always land on the same side, so the
validation loss never measures memorised copies of training rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainforge.contracts import DataFormat
from trainforge.data.fingerprint import fingerprints, mix64
from trainforge.data.formats import texts


def validation_mask(digests: np.ndarray, seed: int, validation_fraction: float) -> np.ndarray:
    """True where the example with that digest (``fingerprint.py``) is held out.

    The digest keyed by the seed and mixed is uniform on [0, 2**64); an example is held out when it falls
    below ``fraction * 2**64``. Vectorised, so a million examples cost milliseconds.
    """
    keyed = mix64(digests.astype(np.uint64) ^ mix64(np.array([seed], dtype=np.int64).view(np.uint64)))
    return keyed < np.uint64(min(int(validation_fraction * 2**64), 2**64 - 1))


def split_records(
    records: list[dict[str, Any]], fmt: DataFormat, seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) exactly as the validation report counted them and the trainer held them out."""
    digests = fingerprints([texts(record, fmt) for record in records]).digests
    held_out = validation_mask(digests, seed, fraction).tolist()
    train = [record for record, out in zip(records, held_out, strict=True) if not out]
    validation = [record for record, out in zip(records, held_out, strict=True) if out]
    return train, validation


def selection_split(
    train: list[dict[str, Any]], fmt: DataFormat, seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A tuning trial's (train, selection): the training side split again, so that the examples a trial is
    scored on (its objective) are neither trained on nor the run's held-out examples, which score the model
    the search chose. Seeded apart from the run's split (``seed + 1``): the two masks are independent."""
    return split_records(train, fmt, seed + 1, fraction)
