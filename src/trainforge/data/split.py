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


def _keyed(digests: np.ndarray, seed: int) -> np.ndarray:
    """The digests keyed by the seed and mixed: uniform on [0, 2**64)."""
    return mix64(digests.astype(np.uint64) ^ mix64(np.array([seed], dtype=np.int64).view(np.uint64)))


def validation_mask(digests: np.ndarray, seed: int, validation_fraction: float) -> np.ndarray:
    """True where the example with that digest (``fingerprint.py``) is held out.

    An example is held out when its keyed digest falls below ``fraction * 2**64``. Vectorised, so a million
    examples cost milliseconds.
    """
    return _keyed(digests, seed) < np.uint64(min(int(validation_fraction * 2**64), 2**64 - 1))


def split_records(
    records: list[dict[str, Any]], fmt: DataFormat, seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) exactly as the validation report counted them and the trainer held them out."""
    digests = fingerprints([texts(record, fmt) for record in records]).digests
    return _partition(records, validation_mask(digests, seed, fraction))


def _partition(
    records: list[dict[str, Any]], held_out: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = held_out.tolist()
    return [r for r, o in zip(records, out, strict=True) if not o], [r for r, o in zip(records, out, strict=True) if o]


def selection_split(
    train: list[dict[str, Any]], fmt: DataFormat, seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A tuning trial's (train, selection): the training side split again, so that the examples a trial is
    scored on (its objective) are neither trained on nor the run's held-out examples, which score the model
    the search chose. Seeded apart from the run's split (``seed + 1``): the two masks are independent.

    The slice is never empty while two distinct examples remain: on a few dozen records the hash mask can
    select none, and a trial without a slice would be scored on its own training loss, which rewards
    memorising. The example with the lowest keyed digest (the first the mask would take) then goes alone."""
    digests = fingerprints([texts(record, fmt) for record in train]).digests
    chosen = validation_mask(digests, seed + 1, fraction)
    if not chosen.any() and len(set(digests.tolist())) > 1:
        keyed = _keyed(digests, seed + 1)
        chosen = keyed == keyed.min()  # duplicates share a digest, so they stay on one side together
    return _partition(train, chosen)
