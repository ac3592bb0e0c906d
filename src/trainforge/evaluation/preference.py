"""Held-out preference metrics, so that a DPO run has a number the gate can hold it to: preference data
has no reference answers, and the perplexity of a chosen answer is not what DPO optimises.

For each held-out pair, a model "prefers" the chosen answer when it gives it a higher log-likelihood than
the rejected one (summed over the answer's tokens, given the same prompt, as DPO scores them).
``preference_accuracy`` is the share of pairs preferred, base against tuned; ``reward_margin`` is DPO's
implicit reward margin of the tuned model against the base as reference (Rafailov et al., 2023), which
is 0 for an unchanged model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainforge.contracts import MetricComparison
from trainforge.evaluation.bootstrap import mean_difference, paired_interval
from trainforge.training.tokenize import preference_prompt


def answer_logps(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_len: int = 1024) -> np.ndarray:
    """(pairs, 2): summed log-likelihood of the chosen and the rejected answer of each record."""
    device = next(model.parameters()).device
    eos = [tokenizer.eos_token_id]
    out = np.zeros((len(records), 2))
    with torch.no_grad():
        for row, record in enumerate(records):
            prompt = tokenizer(preference_prompt(tokenizer, record), add_special_tokens=False)["input_ids"]
            for column, key in enumerate(("chosen", "rejected")):
                answer = tokenizer(record[key], add_special_tokens=False)["input_ids"] + eos
                ids = (prompt + answer)[:max_len]
                start = min(len(prompt), len(ids) - 1)
                tokens = torch.tensor([ids], device=device)
                logits = model(input_ids=tokens).logits[0, :-1].float()
                logps = torch.log_softmax(logits, -1).gather(1, tokens[0, 1:].unsqueeze(1)).squeeze(1)
                out[row, column] = float(logps[start - 1 :].sum()) if start > 0 else float(logps.sum())
    return out


def preference_metrics(base: np.ndarray, tuned: np.ndarray, beta: float, seed: int) -> list[MetricComparison]:
    """``base`` and ``tuned`` from :func:`answer_logps` on the same records."""
    base_prefers = (base[:, 0] > base[:, 1]).astype(float)
    tuned_prefers = (tuned[:, 0] > tuned[:, 1]).astype(float)
    low, high = paired_interval(mean_difference(base_prefers, tuned_prefers), len(base), seed=seed)
    accuracy = MetricComparison(
        name="preference_accuracy",
        base=float(base_prefers.mean()),
        tuned=float(tuned_prefers.mean()),
        delta=float(tuned_prefers.mean() - base_prefers.mean()),
        ci_low=low,
        ci_high=high,
        higher_is_better=True,
    )
    margins = beta * ((tuned[:, 0] - base[:, 0]) - (tuned[:, 1] - base[:, 1]))
    low, high = paired_interval(mean_difference(np.zeros_like(margins), margins), len(margins), seed=seed)
    margin = MetricComparison(
        name="reward_margin",
        base=0.0,
        tuned=float(margins.mean()),
        delta=float(margins.mean()),
        ci_low=low,
        ci_high=high,
        higher_is_better=True,
    )
    return [accuracy, margin]
