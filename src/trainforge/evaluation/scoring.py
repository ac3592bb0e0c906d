"""Scoring base and tuned models on the same held-out examples, the same canary and the same prompts."""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainforge.contracts import DataFormat, EvaluationReport, MetricComparison, SampleGeneration
from trainforge.evaluation.bootstrap import mean_difference, paired_interval, relative_ppl_improvement
from trainforge.evaluation.perplexity import example_nll, perplexity
from trainforge.evaluation.preference import answer_logps, preference_metrics
from trainforge.evaluation.text_metrics import METRICS
from trainforge.spec import EvaluationSpec
from trainforge.training.tokenize import Example, as_messages, encode_record, encode_text


def canary_texts() -> list[str]:
    text = resources.files("trainforge.evaluation").joinpath("canary/public_domain.txt").read_text(encoding="utf-8")
    return [paragraph.strip() for paragraph in text.split("\n\n") if paragraph.strip()]


def prompt_and_reference(record: dict[str, Any], fmt: DataFormat) -> tuple[list[dict[str, str]] | str, str] | None:
    """What to generate from and what a good answer is, for formats that carry references."""
    if fmt in ("chat", "bedrock_conversation"):
        messages = as_messages(record, fmt)
        return messages[:-1], messages[-1]["content"]
    if fmt == "prompt_completion":
        return record["prompt"], record["completion"]
    return None


def prompt_ids(model: Any, tokenizer: Any, prompt: list[dict[str, str]] | str) -> torch.Tensor:
    """The prompt as the model reads it, on its device: a conversation through the chat template."""
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
        next(model.parameters()).device
    )


def greedy(model: Any, tokenizer: Any, ids: torch.Tensor, max_new_tokens: int, **options: Any) -> Any:
    """Greedy decoding as evaluation does it: stopping where the model's generation config stops."""
    with torch.no_grad():
        return model.generate(
            ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            **options,
        )


def generate(model: Any, tokenizer: Any, prompt: list[dict[str, str]] | str, max_new_tokens: int) -> str:
    ids = prompt_ids(model, tokenizer, prompt)
    output = greedy(model, tokenizer, ids, max_new_tokens)
    return str(tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)).strip()


def _ppl_comparison(
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


def score(
    base: Any,
    tuned: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    fmt: DataFormat,
    spec: EvaluationSpec,
    *,
    run_id: str,
    base_model: str,
    tuned_uri: str,
    seed: int = 0,
    dpo_beta: float = 0.1,
) -> EvaluationReport:
    """Base and tuned on the same held-out sample. The primary metric the gate holds to min_improvement is
    held-out perplexity, or for preference data (DPO) the share of pairs whose chosen answer the model
    prefers."""
    sample = random.Random(seed).sample(records, min(len(records), spec.max_examples))
    metrics: list[MetricComparison] = []
    if fmt == "preference":
        primary = "preference_accuracy"
        metrics += preference_metrics(
            answer_logps(base, tokenizer, sample), answer_logps(tuned, tokenizer, sample), dpo_beta, seed
        )
        examples: list[Example] = []
    else:
        primary = "perplexity"
        examples = [encode_record(tokenizer, record, fmt) for record in sample]
        metrics.append(_ppl_comparison("perplexity", example_nll(base, examples), example_nll(tuned, examples), seed))
    canary: list[Example] = [encode_text(tokenizer, text) for text in canary_texts()]
    forgetting = _ppl_comparison("canary_perplexity", example_nll(base, canary), example_nll(tuned, canary), seed)
    samples: list[SampleGeneration] = []
    scores: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in METRICS}
    for record in sample[: spec.generation_samples]:
        pair = prompt_and_reference(record, fmt)
        if pair is None:
            continue
        prompt, reference = pair
        base_answer = generate(base, tokenizer, prompt, spec.max_new_tokens)
        tuned_answer = generate(tuned, tokenizer, prompt, spec.max_new_tokens)
        shown = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        samples.append(SampleGeneration(prompt=shown, reference=reference, base=base_answer, tuned=tuned_answer))
        for name, metric in METRICS.items():
            scores[name][0].append(metric(base_answer, reference))
            scores[name][1].append(metric(tuned_answer, reference))
    for name, (base_scores, tuned_scores) in scores.items():
        if base_scores:
            b, t = np.array(base_scores), np.array(tuned_scores)
            low, high = paired_interval(mean_difference(b, t), len(b), seed=seed)
            metrics.append(
                MetricComparison(
                    name=name,
                    base=float(b.mean()),
                    tuned=float(t.mean()),
                    delta=float(t.mean() - b.mean()),
                    ci_low=low,
                    ci_high=high,
                    higher_is_better=True,
                )
            )
    return EvaluationReport(
        run_id=run_id,
        base_model=base_model,
        tuned_model_uri=tuned_uri,
        examples=len(sample),
        primary=primary,
        metrics=metrics,
        forgetting=forgetting,
        samples=samples,
    )


def load_pair(base_dir: Path, tuned_dir: Path, device: str = "auto") -> tuple[Any, Any, Any]:
    """Base and tuned on the job's device: bf16 on a GPU (an 8B pair fits one 48 GB card only so), fp32 on
    the CPU (exact, and as the reports of earlier runs were scored). ``device`` is what the evaluation
    job's instance type has; a GPU job that finds no GPU fails rather than scoring on the host CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainforge.errors import DeviceUnavailable

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        raise DeviceUnavailable(f"evaluation runs on a GPU or the CPU, not on '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("the evaluation job was placed on a GPU instance but torch sees no CUDA device")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(tuned_dir)
    models: list[Any] = [AutoModelForCausalLM.from_pretrained(folder, dtype=dtype) for folder in (base_dir, tuned_dir)]
    base, tuned = (model.to(device).eval() for model in models)
    return base, tuned, tokenizer
