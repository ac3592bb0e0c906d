"""Forgetting probes: what the base model already knew, measured on base and tuned alike.

One small canary is not enough: its famous openings are memorised by most base models and barely move
while general language modelling degrades. So forgetting is measured on several probes, shipped as package
data (``probes/README.md`` says where each comes from):

- ``canary_perplexity``: the canary's public-domain openings (``canary/``);
- ``general_text_perplexity``: a broader mix of plain expository English the model has not seen verbatim;
- ``knowledge_accuracy``: multiple-choice general-knowledge and instruction questions, each choice scored by
  its mean token log-likelihood after the question (the highest is the model's answer).

Each comparison carries its paired bootstrap interval. :func:`forgetting` is the gate's single figure:
the worst relative perplexity increase of the two text probes. The training container measures the same
text probes at the start and the end of a tuning trial (``tuning.objective``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import torch

from trainforge.contracts import MetricComparison
from trainforge.evaluation.bootstrap import mean_difference, paired_interval, relative_ppl_improvement
from trainforge.evaluation.perplexity import example_nll, perplexity
from trainforge.training.tokenize import encode_text

TEXT_PROBES = ("canary_perplexity", "general_text_perplexity")
KNOWLEDGE_PROBE = "knowledge_accuracy"


def _paragraphs(path: str) -> list[str]:
    text = resources.files("trainforge.evaluation").joinpath(path).read_text(encoding="utf-8")
    return [paragraph.strip() for paragraph in text.split("\n\n") if paragraph.strip()]


def probe_texts() -> dict[str, list[str]]:
    """Text probe name -> its paragraphs."""
    return {
        "canary_perplexity": _paragraphs("canary/public_domain.txt"),
        "general_text_perplexity": _paragraphs("probes/general_text.txt"),
    }


@dataclass(frozen=True)
class Choice:
    question: str
    choices: list[str]
    answer: int


def knowledge_items() -> list[Choice]:
    lines = resources.files("trainforge.evaluation").joinpath("probes/knowledge.jsonl").read_text(encoding="utf-8")
    return [Choice(**json.loads(line)) for line in lines.splitlines() if line.strip()]


def text_nll(model: Any, tokenizer: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per text probe: each paragraph's summed negative log-likelihood and token count."""
    return {
        name: example_nll(model, [encode_text(tokenizer, text) for text in texts])
        for name, texts in probe_texts().items()
    }


def choice_correct(model: Any, tokenizer: Any, items: list[Choice] | None = None, batch_size: int = 32) -> np.ndarray:
    """1.0 where the model's likeliest choice (mean log-likelihood per token) is the right one, else 0.0.
    Every (question, choice) pair is one row; rows are scored ``batch_size`` at a time, right-padded."""
    items = knowledge_items() if items is None else items
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows: list[tuple[int, int, list[int], int]] = []  # (item, choice, ids, prompt length)
    for index, item in enumerate(items):
        prompt = tokenizer(f"Question: {item.question}\nAnswer:", add_special_tokens=False)["input_ids"]
        for number, choice in enumerate(item.choices):
            answer = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
            rows.append((index, number, prompt + answer, len(prompt)))
    scores = np.full((len(items), max((len(i.choices) for i in items), default=0)), -np.inf)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(ids) for _, _, ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, _, tokens, _) in enumerate(chunk):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None].to(device))[..., 0]
            for row, (index, number, tokens, prompt) in enumerate(chunk):
                scores[index, number] = float(logps[row, prompt - 1 : len(tokens) - 1].mean())
    return np.array([float(int(np.argmax(scores[i])) == item.answer) for i, item in enumerate(items)])


def relative_increase(base: tuple[np.ndarray, np.ndarray], tuned: tuple[np.ndarray, np.ndarray]) -> float:
    """(ppl_tuned - ppl_base) / ppl_base: the share by which perplexity rose (negative: it fell)."""
    before, after = perplexity(*base), perplexity(*tuned)
    return (after - before) / before


def ppl_comparison(
    name: str, base: tuple[np.ndarray, np.ndarray], tuned: tuple[np.ndarray, np.ndarray], seed: int
) -> MetricComparison:
    ppl_base, ppl_tuned = perplexity(*base), perplexity(*tuned)
    low, high = paired_interval(relative_ppl_improvement(base, tuned), len(base[0]), seed=seed)
    return MetricComparison(
        name=name,
        base=ppl_base,
        tuned=ppl_tuned,
        delta=(ppl_base - ppl_tuned) / ppl_base,
        ci_low=low,
        ci_high=high,
        higher_is_better=False,
    )


def mean_comparison(name: str, base: np.ndarray, tuned: np.ndarray, seed: int) -> MetricComparison:
    """A [0, 1] score per example, base against tuned: the absolute change of its mean, with its interval."""
    low, high = paired_interval(mean_difference(base, tuned), len(base), seed=seed)
    return MetricComparison(
        name=name,
        base=float(base.mean()),
        tuned=float(tuned.mean()),
        delta=float(tuned.mean() - base.mean()),
        ci_low=low,
        ci_high=high,
        higher_is_better=True,
    )


def probe_comparisons(base: Any, tuned: Any, tokenizer: Any, seed: int = 0) -> list[MetricComparison]:
    """Every probe, base against tuned, with its 95% paired bootstrap interval."""
    base_nll, tuned_nll = text_nll(base, tokenizer), text_nll(tuned, tokenizer)
    found = [ppl_comparison(name, base_nll[name], tuned_nll[name], seed) for name in TEXT_PROBES]
    found.append(
        mean_comparison(KNOWLEDGE_PROBE, choice_correct(base, tokenizer), choice_correct(tuned, tokenizer), seed)
    )
    return found


def forgetting(probes: list[MetricComparison]) -> MetricComparison | None:
    """The gate's forgetting figure: the text probe whose perplexity rose most (lowest improvement)."""
    texts = [probe for probe in probes if probe.name in TEXT_PROBES]
    return min(texts, key=lambda probe: probe.delta) if texts else None
