"""Word and character error rates: the Levenshtein distance between a transcript and its reference over
words (WER) or characters (CER, the measure for languages written without spaces: Japanese, Chinese),
divided by the reference's length, summed over a corpus before dividing (so a long clip weighs more than a
short one, as in every published WER). Normalised first: lower case, punctuation dropped, whitespace
collapsed; CER also drops the spaces."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def edit_distance(hypothesis: Sequence[str], reference: Sequence[str]) -> int:
    """Substitutions + insertions + deletions turning ``hypothesis`` into ``reference`` (one row of the
    dynamic programme at a time)."""
    previous = list(range(len(reference) + 1))
    for i, token in enumerate(hypothesis, 1):
        current = [i]
        for j, expected in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != expected)))
        previous = current
    return previous[-1]


def word_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """(word edits, reference words)."""
    words = normalise(reference).split()
    return edit_distance(normalise(hypothesis).split(), words), len(words)


def char_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """(character edits, reference characters), spaces left out."""
    chars = list(normalise(reference).replace(" ", ""))
    return edit_distance(list(normalise(hypothesis).replace(" ", "")), chars), len(chars)


def error_rate(errors: np.ndarray, lengths: np.ndarray) -> float:
    """The corpus rate: every edit over every reference unit."""
    return float(errors.sum() / max(int(lengths.sum()), 1))
