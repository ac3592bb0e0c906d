"""Word and character error rates: the Levenshtein distance between a transcript and its reference over
words (WER) or characters (CER, the measure for languages written without spaces: Japanese, Chinese),
divided by the reference's length, summed over a corpus before dividing (so a long clip weighs more than a
short one, as in every published WER). Normalised first: NFKC, lower case, every punctuation or symbol
character (Unicode general category P* or S*) turned into a space, whitespace collapsed; CER also drops the
spaces. Combining marks (Mn, Mc: Thai tone marks, Devanagari vowel signs) are letters of the word and kept:
blanking what is neither a regex word character nor a space would blank them (Python's word class excludes
them), and a missing tone mark would count as no error (https://www.unicode.org/reports/tr44/#General_Category_Values).

Which of the two the gate reads (``gated_rate``): CER where most of the held-out reference characters are
in a language written without spaces between words, WER otherwise. There a whole clause is one
whitespace-separated "word", so WER scores one wrong character as the whole clause wrong."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

#: ISO 639 codes (as records and Whisper's tokens spell them) of languages written without spaces between
#: words: Chinese and Cantonese, Japanese, and the scripts that need a dictionary to find word breaks, Thai,
#: Lao, Khmer, Burmese, and Tibetan (https://en.wikipedia.org/wiki/Scriptio_continua; Unicode's line-breaking
#: class SA, https://www.unicode.org/reports/tr14/#SA). Korean is written with spaces: WER.
UNSPACED_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "km", "my", "bo"})
#: the Unicode blocks of those scripts (https://www.unicode.org/charts/): how a record without a language is
#: judged, character by character. Thai and Lao, Tibetan, Myanmar, Khmer, Hiragana and Katakana, CJK
#: ideographs (extension A, the main block, compatibility), half-width Katakana, CJK extensions B and later
_UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)


def normalise(text: str) -> str:
    """The text both rates compare: punctuation and symbols (categories P*, S*) blanked, all else kept."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(" " if unicodedata.category(c)[0] in "PS" else c for c in folded).split())


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


def unspaced_characters(language: str | None, reference: str) -> tuple[int, int]:
    """(characters written without word spaces, characters) of a normalised reference, spaces left out: all
    or none of them by the record's language, each by its script when the record names none."""
    chars = normalise(reference).replace(" ", "")
    if language is None:
        return len(_UNSPACED_SCRIPT.findall(chars)), len(chars)
    return (len(chars) if language.lower() in UNSPACED_LANGUAGES else 0), len(chars)


def gated_rate(references: Iterable[tuple[str | None, str]]) -> str:
    """``"cer"`` when more than half of the reference characters of ``(language, transcript)`` pairs are
    written without word spaces, else ``"wer"``: a mixed set is gated by the measure that fits most of what
    it says (a report still carries both)."""
    unspaced = total = 0
    for language, reference in references:
        count, length = unspaced_characters(language, reference)
        unspaced, total = unspaced + count, total + length
    return "cer" if 2 * unspaced > total else "wer"
