"""Exact and near-duplicate detection that stays fast and small on multi-GB files.

Exact duplicates: equal example digests. Near duplicates: the MinHash bins of each example
(``fingerprint.py``: case-folded byte 8-gram shingles, one-permutation hashing into 128 bins), densified,
then locality-sensitive hashing with (bands, rows) chosen so that the LSH threshold (1/b)^(1/r) is closest
to the configured similarity (``fingerprint.py`` computes the band keys). Only the per-record digests and
band keys are kept (8 bytes each), and collisions are resolved once at the end, a band at a time, so
memory grows by ~100 bytes per record and never with the size of the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainforge.data.fingerprint import BINS


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
    #: the number the first record has in ``fingerprints`` (which makes a text too short for any shingle
    #: unique by its number): 0 for a whole pass, a range of its own for each shard of a sharded one
    first_record: int = 0
    _digests: list[np.ndarray] = field(default_factory=list)
    _bands: list[np.ndarray] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self.bands, self.rows = lsh_parameters(self.threshold)

    @property
    def lsh(self) -> tuple[int, int] | None:
        """The (bands, rows) to ask ``fingerprints`` for; None when near duplicates are not looked for."""
        return (self.bands, self.rows) if self.near else None

    @property
    def count(self) -> int:
        """How many examples were recorded."""
        return self._count

    @property
    def next_record(self) -> int:
        """The number to give the next example's fingerprint (``fingerprints(first=...)``)."""
        return self.first_record + self._count

    def band_keys(self) -> np.ndarray | None:
        """Every record's LSH band keys, in record order (None when near duplicates are not looked for)."""
        if not self.near:
            return None
        return np.concatenate(self._bands) if self._bands else np.empty((0, self.bands), dtype=np.uint64)

    def extend(self, digests: np.ndarray, band_keys: np.ndarray | None) -> None:
        """Record the next examples by their digests and (when ``near``) LSH band keys."""
        self._digests.append(digests)
        if self.near:
            assert band_keys is not None
            self._bands.append(band_keys)
        self._count += len(digests)

    def digests(self) -> np.ndarray:
        """Every record's digest, in record order."""
        return np.concatenate(self._digests) if self._digests else np.empty(0, dtype=np.uint64)

    def finish(self) -> list[Duplicate]:
        count = self._count
        if not count:
            return []
        records = np.arange(count)
        first = _first_occurrence(self.digests())
        exact = first != records
        near = np.zeros(count, dtype=bool)
        bands = self.band_keys()
        if bands is not None and len(bands):
            for band in range(self.bands):  # one band at a time: the sort's memory is one column's
                band_first = _first_occurrence(np.ascontiguousarray(bands[:, band]))
                # the first record sharing a band with this one, from the lowest band that has one
                new = (band_first != records) & ~exact & ~near
                first[new] = band_first[new]
                near |= new
        found = np.flatnonzero(exact | near)
        return [Duplicate(int(i), int(first[i]), bool(exact[i])) for i in found]


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    """For each position, the index of the first position holding the same key. Nearly every key is
    unique: a value sort (SIMD, no index array) finds the few repeated keys, and only the positions
    holding those are ordered by index."""
    result = np.arange(len(keys))
    ordered = np.sort(keys)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return result
    slot = np.minimum(np.searchsorted(repeated, keys), len(repeated) - 1)
    positions = np.flatnonzero(repeated[slot] == keys)
    # positions are in index order, so a stable sort by key puts each group's first position first
    order = positions[np.argsort(keys[positions], kind="stable")]
    sorted_keys = keys[order]
    group_start = np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))
    result[order] = order[group_start][np.cumsum(group_start) - 1]
    return result
