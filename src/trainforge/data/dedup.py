"""Exact and near-duplicate detection that stays fast and small on multi-GB files.

Exact duplicates: equal example digests. Near duplicates: the MinHash bins of each example
(``fingerprint.py``: case-folded byte 8-gram shingles, one-permutation hashing into 128 bins), densified,
then locality-sensitive hashing with (bands, rows) chosen so that the LSH threshold (1/b)^(1/r) is closest
to the configured similarity. Only the per-record digests and band hashes are kept (8 bytes each), and
collisions are resolved once at the end with a sort, so memory grows by ~100 bytes per record and never
with the size of the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainforge.data.fingerprint import BINS, EMPTY, mix64

_U64 = np.uint64


def lsh_parameters(threshold: float, num_perm: int = BINS) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm whose S-curve threshold is nearest ``threshold``."""
    best = (1, num_perm)
    best_error = float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        error = abs((1 / bands) ** (1 / rows) - threshold)
        if error < best_error - 1e-12:
            best, best_error = (bands, rows), error
    return best


def minhash_bands(signature: np.ndarray, bands: int, rows: int, first: int = 0) -> np.ndarray:
    """Band hashes, shape (n, bands), of the raw MinHash bins of records ``first``, ``first+1``..."""
    count = len(signature)
    signature = _densify(signature, first)
    used = signature[:, : bands * rows].reshape(count, bands, rows)
    weights = mix64(np.arange(1, rows + 1, dtype=np.uint64))
    band_hashes = (used * weights).sum(axis=2, dtype=np.uint64)
    return band_hashes ^ mix64(np.arange(bands, dtype=np.uint64))


def _densify(signature: np.ndarray, first: int) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (circularly), mixed with the distance
    (Shrivastava & Li, 2014), so short texts that leave bins empty still get comparable signatures.
    A record with no shingle at all gets values unique to it, so it never matches anything. Only the rows
    with an empty bin are touched (in place): long texts fill all 128."""
    sparse = np.flatnonzero((signature == EMPTY).any(axis=1))
    if not len(sparse):
        return signature
    rows = signature[sparse]
    count, bins = rows.shape
    empty = rows == EMPTY
    doubled = np.concatenate([rows, rows], axis=1)
    column = np.where(doubled != EMPTY, np.arange(2 * bins), 2 * bins)
    next_full = np.minimum.accumulate(column[:, ::-1], axis=1)[:, ::-1][:, :bins]
    distance = (next_full - np.arange(bins)).astype(np.uint64)
    source = doubled[np.arange(count)[:, None], np.minimum(next_full, 2 * bins - 1)]
    filled = np.where(empty, mix64(source + distance), rows)
    hopeless = next_full >= 2 * bins
    if hopeless.any():
        record = (sparse[:, None] + first).astype(np.uint64)
        unique = mix64(record * _U64(bins) + np.arange(bins, dtype=np.uint64) + _U64(1 << 60))
        filled[hopeless] = unique[hopeless] | _U64(1 << 63)
    signature[sparse] = filled
    return signature


@dataclass
class Duplicate:
    index: int
    first: int
    exact: bool


@dataclass
class Deduplicator:
    """Collects fingerprints batch by batch; :meth:`finish` returns the duplicates in record order."""

    threshold: float
    near: bool = True
    _digests: list[np.ndarray] = field(default_factory=list)
    _bands: list[np.ndarray] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self.bands, self.rows = lsh_parameters(self.threshold)

    def extend(self, digests: np.ndarray, signatures: np.ndarray | None) -> None:
        """Record the next examples by their digests and (when ``near``) raw MinHash bins."""
        self._digests.append(digests)
        if self.near:
            assert signatures is not None
            self._bands.append(minhash_bands(signatures, self.bands, self.rows, self._count))
        self._count += len(digests)

    def digests(self) -> np.ndarray:
        """Every record's digest, in record order."""
        return np.concatenate(self._digests) if self._digests else np.empty(0, dtype=np.uint64)

    def finish(self) -> list[Duplicate]:
        count = self._count
        if not count:
            return []
        digests = self.digests()
        first = _first_occurrence(digests)
        found = {i: Duplicate(i, int(first[i]), True) for i in np.nonzero(first != np.arange(count))[0].tolist()}
        if self.near:
            bands = np.concatenate(self._bands) if self._bands else np.empty((0, self.bands), np.uint64)
            for band in range(self.bands):
                band_first = _first_occurrence(bands[:, band])
                for index in np.nonzero(band_first != np.arange(count))[0].tolist():
                    if index not in found:
                        found[index] = Duplicate(index, int(band_first[index]), False)
        return [found[index] for index in sorted(found)]


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    """For each position, the index of the first position holding the same key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    group_start = np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))
    group_id = np.cumsum(group_start) - 1
    firsts = order[group_start]
    result = np.empty_like(order)
    result[order] = firsts[group_id]
    return result
