"""What identifies an example, computed in one pass per batch of records: its digest (exact duplicates and
the train/validation split, the same in the validator and the trainer), the LSH band keys of its densified
MinHash bins (near duplicates) and its PII pre-filter triggers.

A record is the list of its free texts (``formats.texts``). Its normal form is those texts joined by
``\\x1f``, UTF-8, with outer ASCII whitespace stripped and ASCII letters folded to lower case: copies that
differ only in case or surrounding spaces are exact duplicates. (Folding ASCII only keeps the normal form
a per-byte operation; collapsing inner whitespace as well cost more than the rest of validation, and
near-duplicate detection catches re-spaced copies.)

``_scan.c`` computes all three in one compiled pass; the numpy twins below give the same bits where it is
not built, and a test holds them equal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from trainforge.data.compiled import scan
from trainforge.data.pii import _pii_triggers

SEPARATOR = "\x1f"
BINS = 128
_SPACE = b" \t\n\x0b\x0c\r"
_WINDOW = 8
_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_WORD_KEY = _U64(0x9E3779B97F4A7C15)
_LENGTH_KEY = _U64(0xD6E8FEB86659FD93)
EMPTY = np.iinfo(np.uint64).max


@dataclass(frozen=True)
class Fingerprints:
    #: (n,) uint64: equal for examples with the same normal form
    digests: np.ndarray
    #: (n, bands) uint64 LSH band keys of the densified MinHash bins (equal keys in any band: candidate near
    #: duplicates; each band's keys differ from every other band's); None if not asked
    band_keys: np.ndarray | None
    #: (n,) uint8: which PII detectors each example can interest (``pii`` trigger bits)
    triggers: np.ndarray


def fingerprints(batch: list[list[str]], lsh: tuple[int, int] | None = None, first: int = 0) -> Fingerprints:
    """Fingerprints of ``batch``, records ``first``, ``first + 1``... of the dataset; band keys for
    ``lsh = (bands, rows)`` (``dedup.lsh_parameters``) when given."""
    bands, rows = lsh or (0, 0)
    if scan is not None:
        digests, keys, triggers = scan.fingerprint(batch, bands, rows, first)
        band_keys = None if keys is None else np.frombuffer(keys, dtype="<u8").reshape(len(batch), bands)
        return Fingerprints(np.frombuffer(digests, dtype="<u8"), band_keys, np.frombuffer(triggers, dtype=np.uint8))
    joined = [SEPARATOR.join(texts) for texts in batch]
    normal = [normalise(text) for text in joined]
    return Fingerprints(
        _numpy_digests(normal),
        minhash_bands(_numpy_signatures(normal), bands, rows, first) if bands else None,
        np.fromiter(map(_pii_triggers, joined), dtype=np.uint8, count=len(joined)),
    )


def normalise(text: str) -> bytes:
    return text.encode("utf-8").strip(_SPACE).lower()  # bytes.lower() folds ASCII letters only


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads values over all 64 bits."""
    values = values ^ (values >> _U64(30))
    values = values * _MIX1
    values = values ^ (values >> _U64(27))
    values = values * _MIX2
    return values ^ (values >> _U64(31))


def _numpy_digests(normal: list[bytes]) -> np.ndarray:
    """Twin of ``_scan.c``'s ``digest_of``: the text's little-endian 8-byte words (zero-padded), each mixed
    with its position, summed, and mixed with the length."""
    lengths = np.fromiter(map(len, normal), dtype=np.int64, count=len(normal))
    words_per = (lengths + 7) // 8
    words = np.frombuffer(b"".join(text + bytes(-len(text) % 8) for text in normal), dtype="<u8")
    starts = np.cumsum(words_per) - words_per
    position = np.arange(len(words)) - np.repeat(starts, words_per) + 1
    mixed = mix64(words + position.astype(np.uint64) * _WORD_KEY)
    totals = np.zeros(len(normal), dtype=np.uint64)
    filled = words_per > 0
    if filled.any():
        totals[filled] = np.add.reduceat(mixed, starts[filled])
    return mix64(totals + lengths.astype(np.uint64) * _LENGTH_KEY)


def _numpy_signatures(normal: list[bytes]) -> np.ndarray:
    """Twin of ``_scan.c``'s ``signature_of``. Shingles are the 8-byte windows of the normal form, read
    with zero arithmetic as eight unaligned uint64 views of the batch buffer. One odd-constant multiply
    permutes them (a bijection on uint64); its top seven bits pick the bin, and each bin keeps its minimum.
    """
    count = len(normal)
    lengths = np.fromiter(map(len, normal), dtype=np.int64, count=count)
    ends = np.cumsum(lengths)
    buffer = b"".join(normal)
    size = len(buffer)
    owner_of_byte = np.repeat(np.arange(count, dtype=np.int64), lengths)
    signature: np.ndarray = np.full(count * BINS, EMPTY, dtype=np.uint64)
    for offset in range(min(_WINDOW, max(size - _WINDOW + 1, 0))):
        hashed = np.frombuffer(buffer, dtype="<u8", count=(size - offset) // _WINDOW, offset=offset) * _MIX1
        owner = owner_of_byte[offset::_WINDOW][: len(hashed)]
        inside = offset + np.arange(len(hashed)) * _WINDOW + _WINDOW <= ends[owner]  # none across two records
        slots = owner[inside] * BINS + (hashed[inside] >> _U64(57)).astype(np.int64)
        np.minimum.at(signature, slots, hashed[inside])
    return signature.reshape(count, BINS)


def minhash_bands(signature: np.ndarray, bands: int, rows: int, first: int = 0) -> np.ndarray:
    """Twin of ``_scan.c``'s band keys: shape (n, bands), of the raw MinHash bins of records ``first``,
    ``first + 1``... (densified in place first)."""
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


def content_fingerprint(file_digests: Iterable[str]) -> str:
    """The content of a dataset: one hash over its files' sha256, independent of their names, versions and
    order. The retrain schedule compares it with the last successful run's."""
    return hashlib.sha256(json.dumps(sorted(file_digests)).encode()).hexdigest()
