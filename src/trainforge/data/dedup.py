"""Exact and near-duplicate detection that stays fast and small on multi-GB files.

Exact duplicates: the 8-byte digest of each example's normalised text (``fingerprint.py``).
Near duplicates: MinHash signatures of case-folded byte 8-gram shingles with one-permutation hashing (one
hash per shingle, 128 bins), computed in one compiled pass per record (``_scan.c``, with a numpy twin where
it is not built), then locality-sensitive hashing with (bands, rows) chosen so that the LSH threshold
(1/b)^(1/r) is closest to the configured similarity. Only the per-record digests and band hashes are kept (8 bytes each), and
collisions are resolved once at the end with a sort, so memory grows by ~100 bytes per record and never
with the size of the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainforge.data.compiled import scan

_BINS = 128
_WINDOW = 8
_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_EMPTY = np.iinfo(np.uint64).max


def lsh_parameters(threshold: float, num_perm: int = _BINS) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm whose S-curve threshold is nearest ``threshold``."""
    best = (1, num_perm)
    best_error = float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        error = abs((1 / bands) ** (1 / rows) - threshold)
        if error < best_error - 1e-12:
            best, best_error = (bands, rows), error
    return best


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads shingle values over all 64 bits."""
    values = values ^ (values >> _U64(30))
    values = values * _MIX1
    values = values ^ (values >> _U64(27))
    values = values * _MIX2
    return values ^ (values >> _U64(31))


def _numpy_signatures(texts: list[str]) -> np.ndarray:
    """The pure-numpy twin of ``_scan.c``'s ``minhash_signatures`` (same bins, bit for bit), for where the
    compiled module was not built.

    Shingles are the 8-byte windows of the UTF-8 text with ASCII letters folded to lower case, read with
    zero arithmetic as eight unaligned uint64 views of the batch buffer. One odd-constant multiply
    permutes them (a bijection on uint64); its top seven bits pick the bin, and each bin keeps its minimum.
    """
    count = len(texts)
    encoded = [text.encode("utf-8") for text in texts]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=count)
    ends = np.cumsum(lengths)
    buffer = b"".join(encoded).lower()  # bytes.lower() folds ASCII only, like the compiled loop
    size = len(buffer)
    owner_of_byte = np.repeat(np.arange(count, dtype=np.int64), lengths)
    signature: np.ndarray = np.full(count * _BINS, _EMPTY, dtype=np.uint64)
    for offset in range(min(_WINDOW, max(size - _WINDOW + 1, 0))):
        hashed = np.frombuffer(buffer, dtype="<u8", count=(size - offset) // _WINDOW, offset=offset) * _MIX1
        owner = owner_of_byte[offset::_WINDOW][: len(hashed)]
        inside = offset + np.arange(len(hashed)) * _WINDOW + _WINDOW <= ends[owner]  # none across two records
        slots = owner[inside] * _BINS + (hashed[inside] >> _U64(57)).astype(np.int64)
        np.minimum.at(signature, slots, hashed[inside])
    return signature.reshape(count, _BINS)


def minhash_signatures(texts: list[str]) -> np.ndarray:
    """Raw one-permutation MinHash bins, shape (len(texts), 128), writable; empty bins hold 2**64 - 1."""
    if scan is None:
        return _numpy_signatures(texts)
    return np.frombuffer(scan.minhash_signatures(texts), dtype=np.uint64).reshape(len(texts), _BINS)


def minhash_bands(texts: list[str], bands: int, rows: int, first: int = 0) -> np.ndarray:
    """Band hashes, shape (len(texts), bands), for a batch of texts that are records ``first``, ``first+1``..."""
    count = len(texts)
    signature = _densify(minhash_signatures(texts), first)
    used = signature[:, : bands * rows].reshape(count, bands, rows)
    weights = mix64(np.arange(1, rows + 1, dtype=np.uint64))
    band_hashes = (used * weights).sum(axis=2, dtype=np.uint64)
    return band_hashes ^ mix64(np.arange(bands, dtype=np.uint64))


def _densify(signature: np.ndarray, first: int) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (circularly), mixed with the distance
    (Shrivastava & Li, 2014), so short texts that leave bins empty still get comparable signatures.
    A record with no shingle at all gets values unique to it, so it never matches anything. Only the rows
    with an empty bin are touched (in place): long texts fill all 128."""
    sparse = np.flatnonzero((signature == _EMPTY).any(axis=1))
    if not len(sparse):
        return signature
    rows = signature[sparse]
    count, bins = rows.shape
    empty = rows == _EMPTY
    doubled = np.concatenate([rows, rows], axis=1)
    column = np.where(doubled != _EMPTY, np.arange(2 * bins), 2 * bins)
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
    """Collects fingerprints record by record; :meth:`finish` returns the duplicates in record order."""

    threshold: float
    near: bool = True
    batch_size: int = 2048
    _digests: list[bytes] = field(default_factory=list)
    _pending: list[str] = field(default_factory=list)
    _bands: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bands, self.rows = lsh_parameters(self.threshold)

    def extend(self, digests: list[bytes], normals: list[str]) -> None:
        """Record examples by their :func:`example_digest` and :func:`normalise`-d text."""
        self._digests.extend(digests)
        if self.near:
            self._pending.extend(normals)
            if len(self._pending) >= self.batch_size:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            first = len(self._digests) - len(self._pending)
            self._bands.append(minhash_bands(self._pending, self.bands, self.rows, first))
            self._pending = []

    def digests(self) -> np.ndarray:
        """Every record's :func:`example_digest` as little-endian uint64, in record order."""
        return np.frombuffer(b"".join(self._digests), dtype="<u8")

    def finish(self) -> list[Duplicate]:
        count = len(self._digests)
        if not count:
            return []
        digests = self.digests()
        first = _first_occurrence(digests)
        found = {i: Duplicate(i, int(first[i]), True) for i in np.nonzero(first != np.arange(count))[0].tolist()}
        if self.near:
            self._flush()
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
