"""Token-weighted perplexity on target tokens only (the tokens a model is trained to produce: assistant
turns for chat, completions, all of plain text), kept per example so the bootstrap can resample."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainforge.training.tokenize import IGNORE, Example


def example_nll(
    model: Any, examples: list[Example], batch_size: int = 8, max_len: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Per example: summed negative log-likelihood of its target tokens, and how many there are."""
    model.eval()
    device = next(model.parameters()).device
    sums = np.zeros(len(examples))
    counts = np.zeros(len(examples), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            width = min(max_len, max(len(e.input_ids) for e in chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, example in enumerate(chunk):
                length = min(width, len(example.input_ids))
                ids[row, :length] = torch.tensor(example.input_ids[:length])
                labels[row, :length] = torch.tensor(example.labels[:length])
                mask[row, :length] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
            targets = labels[:, 1:].to(device)
            losses = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
            sums[start : start + len(chunk)] = losses.sum(dim=1).cpu().numpy()
            counts[start : start + len(chunk)] = (targets != IGNORE).sum(dim=1).cpu().numpy()
    return sums, counts


def perplexity(sums: np.ndarray, counts: np.ndarray) -> float:
    return float(np.exp(sums.sum() / max(int(counts.sum()), 1)))
