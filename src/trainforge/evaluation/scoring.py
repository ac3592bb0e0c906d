"""Scoring base and tuned models on the same held-out examples, the same canary and the same prompts."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainforge.contracts import DataFormat, EvaluationReport, MetricComparison, SampleGeneration
from trainforge.evaluation.perplexity import example_nll
from trainforge.evaluation.preference import answer_logps, preference_metrics
from trainforge.evaluation.probes import forgetting, mean_comparison, ppl_comparison, probe_comparisons
from trainforge.evaluation.text_metrics import METRICS
from trainforge.spec import EvaluationSpec
from trainforge.training.tokenize import Example, as_messages, encode_record


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


def generate_batch(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]] | str], max_new_tokens: int, batch_size: int = 16
) -> list[str]:
    """Greedy answers to many prompts, ``batch_size`` at a time, left-padded so every answer starts where its
    prompt ends (the same answers as :func:`generate` one by one, up to padding's effect on numerics)."""
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) if isinstance(p, list) else p
        for p in prompts
    ]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            encoded = tokenizer(chunk, add_special_tokens=False, return_tensors="pt", padding=True)
            ids = encoded["input_ids"].to(next(model.parameters()).device)
            mask = encoded["attention_mask"].to(ids.device)
            with torch.no_grad():
                output = model.generate(
                    ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad
                )
            answers += [str(tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True)).strip() for row in output]
    finally:
        tokenizer.padding_side = side
    return answers


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
        metrics.append(ppl_comparison("perplexity", example_nll(base, examples), example_nll(tuned, examples), seed))
    probes = probe_comparisons(base, tuned, tokenizer, seed)
    # task metrics over every sampled example with a reference; the first generation_samples are shown
    pairs = [pair for pair in (prompt_and_reference(record, fmt) for record in sample) if pair is not None]
    base_answers = generate_batch(base, tokenizer, [p for p, _ in pairs], spec.max_new_tokens)
    tuned_answers = generate_batch(tuned, tokenizer, [p for p, _ in pairs], spec.max_new_tokens)
    samples: list[SampleGeneration] = []
    shown = zip(pairs[: spec.generation_samples], base_answers, tuned_answers, strict=False)
    for (prompt, reference), base_answer, tuned_answer in shown:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        samples.append(SampleGeneration(prompt=text, reference=reference, base=base_answer, tuned=tuned_answer))
    references = [reference for _, reference in pairs]
    for name, metric in METRICS.items():
        if pairs:
            b = np.array([metric(a, r) for a, r in zip(base_answers, references, strict=True)])
            t = np.array([metric(a, r) for a, r in zip(tuned_answers, references, strict=True)])
            metrics.append(mean_comparison(name, b, t, seed))
    return EvaluationReport(
        run_id=run_id,
        base_model=base_model,
        tuned_model_uri=tuned_uri,
        examples=len(sample),
        primary=primary,
        metrics=metrics,
        forgetting=forgetting(probes),
        probes=probes,
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
