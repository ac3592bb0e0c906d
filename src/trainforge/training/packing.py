"""Packing examples into fixed-length sequences.

Best-fit decreasing: each example goes, whole, into the fullest sequence that still has room, so a
sequence never holds part of an example and padding stays small. Position ids restart at every example
and the attention mask is block-diagonal, so packed examples never see each other. Examples longer than
the sequence are truncated (counted: the validation report warns about them before training).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import torch

from trainforge.training.tokenize import IGNORE, Example


@dataclass
class PackedSequence:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)

    def add(self, example: Example, document: int) -> None:
        self.input_ids += example.input_ids
        # The first token of a document has no predecessor inside it: never score it from the previous one.
        self.labels += [IGNORE, *example.labels[1:]]
        self.position_ids += range(len(example.input_ids))
        self.document_ids += [document] * len(example.input_ids)


@dataclass(frozen=True)
class PackStats:
    sequences: int
    tokens: int
    padding: int
    truncated: int

    @property
    def padding_waste(self) -> float:
        total = self.tokens + self.padding
        return self.padding / total if total else 0.0


def pack(examples: list[Example], seq_len: int) -> tuple[list[PackedSequence], PackStats]:
    truncated = 0
    items = []
    for index, example in enumerate(examples):
        if len(example.input_ids) > seq_len:
            truncated += 1
            example = Example(example.input_ids[:seq_len], example.labels[:seq_len])
        if any(label != IGNORE for label in example.labels):
            items.append((index, example))
    items.sort(key=lambda item: (-len(item[1].input_ids), item[0]))
    bins: list[PackedSequence] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for index, example in items:
        size = len(example.input_ids)
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, bin_index = free.pop(slot)
        else:
            room, bin_index = seq_len, len(bins)
            bins.append(PackedSequence())
        bins[bin_index].add(example, index)
        if room - size > 0:
            bisect.insort(free, (room - size, bin_index))
    # keep the corpus order stable across runs regardless of sort ties
    bins.sort(key=lambda b: b.document_ids[0])
    tokens = sum(len(b.input_ids) for b in bins)
    return bins, PackStats(len(bins), tokens, len(bins) * seq_len - tokens, truncated)


def collate(batch: list[PackedSequence], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to seq_len and build the block-diagonal causal mask (bool, for SDPA)."""
    size = len(batch)
    input_ids = torch.full((size, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((size, seq_len), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((size, seq_len), dtype=torch.long)
    documents = torch.full((size, seq_len), -1, dtype=torch.long)
    for row, sequence in enumerate(batch):
        length = len(sequence.input_ids)
        input_ids[row, :length] = torch.tensor(sequence.input_ids)
        labels[row, :length] = torch.tensor(sequence.labels)
        position_ids[row, :length] = torch.tensor(sequence.position_ids)
        documents[row, :length] = torch.tensor(sequence.document_ids)
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    same_document = documents[:, :, None] == documents[:, None, :]
    # padding attends to itself only, so no row of the mask is empty (SDPA would return NaN)
    mask = (same_document & causal) | torch.eye(seq_len, dtype=torch.bool)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "attention_mask": mask[:, None]}
