"""Token statistics with the base model's own tokenizer (the Rust ``tokenizers`` library, no torch).

Counts are per example: the sum of its text fields plus a fixed per-message allowance for the chat
template's role markers, which is within a few tokens of what the training tokenizer produces and costs
no template rendering.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from trainforge.contracts import TokenStats

TEMPLATE_TOKENS_PER_MESSAGE = 5
_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class TokenCounter:
    def __init__(self, tokenizer: Tokenizer, name: str, max_seq_len: int, batch_size: int = 256) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self._lengths = array("I")
        self._pending: list[str] = []
        self._overheads: list[int] = []

    @classmethod
    def from_file(cls, path: Path, max_seq_len: int) -> TokenCounter:
        return cls(Tokenizer.from_file(str(path)), path.parent.name, max_seq_len)

    def add(self, texts: list[str]) -> None:
        self._pending.append("\n".join(texts))
        self._overheads.append(TEMPLATE_TOKENS_PER_MESSAGE * len(texts))
        if len(self._pending) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        encodings = self.tokenizer.encode_batch(self._pending, add_special_tokens=False)
        self._lengths.extend(len(enc.ids) + extra for enc, extra in zip(encodings, self._overheads, strict=False))
        self._pending, self._overheads = [], []

    def lengths(self) -> np.ndarray:
        """Every example's token count so far, in example order (uint32)."""
        self._flush()
        return np.frombuffer(self._lengths, dtype=np.uint32)

    def stats(self) -> TokenStats | None:
        return token_stats(self.lengths(), self.name, self.max_seq_len)


def token_stats(lengths: np.ndarray, name: str, max_seq_len: int) -> TokenStats | None:
    """The report's token statistics of per-example counts; a sharded pass merges its shards' counts and
    calls this once, so percentiles are of the whole dataset, never averaged."""
    if not len(lengths):
        return None
    lengths = lengths.astype(np.int64)
    histogram: dict[str, int] = {}
    lower = 0
    for upper in (*_BUCKETS, int(lengths.max()) + 1):
        count = int(((lengths > lower) & (lengths <= upper)).sum())
        if count:
            histogram[f"<={upper}" if upper in _BUCKETS else f">{lower}"] = count
        lower = upper
        if upper >= lengths.max():
            break
    return TokenStats(
        tokenizer=name,
        total_tokens=int(lengths.sum()),
        mean_tokens=round(float(lengths.mean()), 2),
        max_tokens=int(lengths.max()),
        p50_tokens=int(np.percentile(lengths, 50)),
        p95_tokens=int(np.percentile(lengths, 95)),
        truncated_examples=int((lengths > max_seq_len).sum()),
        max_seq_len=max_seq_len,
        histogram=histogram,
    )
