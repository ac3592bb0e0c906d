"""Base vs tuned for the speech and multimodal tiers, on the same held-out examples, with paired bootstrap
intervals (``bootstrap.py``) and the same report the gate reads.

- speech: word and character error rates; the primary (gated) one is CER when most of the held-out
  reference characters are in a language written without word spaces (Japanese, Chinese, Thai...), WER
  otherwise (``speech_metrics.gated_rate``). ``min_improvement`` is then absolute: 0.05 is five fewer word
  (or character) errors in a hundred. No forgetting check: TrainForge ships no general speech set whose
  licence allows redistribution, so the gate's forgetting check is skipped with a note (``gate.py``).
- multimodal: held-out perplexity of the assistant's answers given the images (primary, relative, as for
  text), exact match and token F1 of greedy answers, and forgetting as the text canary's perplexity through
  the language model alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainforge.contracts import EvaluationReport, MetricComparison, SampleGeneration
from trainforge.evaluation.bootstrap import paired_interval
from trainforge.evaluation.perplexity import example_nll
from trainforge.evaluation.probes import mean_comparison, ppl_comparison, probe_texts
from trainforge.evaluation.speech_metrics import char_errors, error_rate, gated_rate, word_errors
from trainforge.evaluation.text_metrics import exact_match, token_f1
from trainforge.media.decode import decode_audio
from trainforge.media.generation import answer, load_media_model, transcribe
from trainforge.media.limits import MediaLimits
from trainforge.media.records import content_text
from trainforge.spec import EvaluationSpec
from trainforge.training.media_objectives import (
    ImageTextToText,
    media_bytes,
    processor_messages,
    vision_example,
)
from trainforge.training.tokenize import encode_text


def _rate_comparison(
    name: str, errors: tuple[np.ndarray, np.ndarray], lengths: np.ndarray, seed: int
) -> MetricComparison:
    base, tuned = errors

    def improvement(indices: np.ndarray) -> float:
        return error_rate(base[indices], lengths[indices]) - error_rate(tuned[indices], lengths[indices])

    low, high = paired_interval(improvement, len(lengths), seed=seed)
    rate_base, rate_tuned = error_rate(base, lengths), error_rate(tuned, lengths)
    return MetricComparison(
        name=name,
        base=rate_base,
        tuned=rate_tuned,
        delta=rate_base - rate_tuned,
        ci_low=low,
        ci_high=high,
        higher_is_better=False,
    )


def _speech(
    models: dict[str, Any], data_dir: Path, records: list[dict[str, Any]], spec: EvaluationSpec, seed: int
) -> tuple[list[MetricComparison], list[SampleGeneration]]:
    words = {side: np.zeros(len(records)) for side in models}
    chars = {side: np.zeros(len(records)) for side in models}
    word_counts, char_counts = np.zeros(len(records)), np.zeros(len(records))
    samples: list[SampleGeneration] = []
    for index, record in enumerate(records):
        clip = decode_audio(media_bytes(data_dir, record["audio"], MediaLimits().max_audio_bytes)).samples
        heard = {}
        for side, (processor, model) in models.items():
            heard[side] = transcribe(model, processor, clip, record.get("language"), spec.max_new_tokens)
            words[side][index], word_counts[index] = word_errors(heard[side], record["text"])
            chars[side][index], char_counts[index] = char_errors(heard[side], record["text"])
        if len(samples) < spec.generation_samples:
            samples.append(SampleGeneration(prompt=record["audio"], reference=record["text"], **heard))
    metrics = [
        _rate_comparison("wer", (words["base"], words["tuned"]), word_counts, seed),
        _rate_comparison("cer", (chars["base"], chars["tuned"]), char_counts, seed),
    ]
    return metrics, samples


def _multimodal(
    models: dict[str, Any], data_dir: Path, records: list[dict[str, Any]], spec: EvaluationSpec, seed: int
) -> tuple[list[MetricComparison], list[SampleGeneration], MetricComparison]:
    nll: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    canary: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scores = {(side, name): np.zeros(len(records)) for side in models for name in ("exact_match", "token_f1")}
    samples: list[SampleGeneration] = []
    replies: dict[str, list[str]] = {side: [] for side in models}
    for side, (processor, model) in models.items():
        model.eval()
        examples = [vision_example(processor, data_dir, record) for record in records]
        objective = ImageTextToText(examples, processor)
        sums, counts = np.zeros(len(records)), np.zeros(len(records), dtype=np.int64)
        with torch.no_grad():
            for index in range(len(records)):
                batch = objective.batch([index])
                sums[index], counts[index] = float(objective.loss_sum(model, batch)), objective.count(batch)
                record = records[index]
                reference = content_text(record["messages"][-1]["content"])
                reply = answer(
                    model,
                    processor,
                    processor_messages(record)[:-1],
                    objective.images(examples[index]),
                    spec.max_new_tokens,
                )
                replies[side].append(reply)
                scores[(side, "exact_match")][index] = exact_match(reply, reference)
                scores[(side, "token_f1")][index] = token_f1(reply, reference)
        nll[side] = (sums, counts)
        canary[side] = example_nll(
            model, [encode_text(processor.tokenizer, text) for text in probe_texts()["canary_perplexity"]]
        )
    for index, record in enumerate(records[: spec.generation_samples]):
        question = processor_messages(record)[-2]["content"]
        prompt = " ".join(part.get("text", "<image>") for part in question)
        reference = content_text(record["messages"][-1]["content"])
        samples.append(
            SampleGeneration(
                prompt=prompt, reference=reference, base=replies["base"][index], tuned=replies["tuned"][index]
            )
        )
    metrics = [
        ppl_comparison("perplexity", nll["base"], nll["tuned"], seed),
        *(
            mean_comparison(name, scores[("base", name)], scores[("tuned", name)], seed)
            for name in ("exact_match", "token_f1")
        ),
    ]
    return metrics, samples, ppl_comparison("canary_perplexity", canary["base"], canary["tuned"], seed)


def score_media(
    base_dir: Path,
    tuned_dir: Path,
    data_dir: Path,
    records: list[dict[str, Any]],
    fmt: str,
    spec: EvaluationSpec,
    *,
    run_id: str,
    base_model: str,
    tuned_uri: str,
    seed: int = 0,
) -> EvaluationReport:
    """The evaluation report of a speech or multimodal run (its verdict is the gate's to add)."""
    records = records[: spec.max_examples]
    models = {"base": load_media_model(base_dir), "tuned": load_media_model(tuned_dir)}
    for _, model in models.values():
        model.eval()
    if fmt == "speech":
        metrics, samples = _speech(models, data_dir, records, spec, seed)
        forgetting = None
        primary = gated_rate((record.get("language"), record["text"]) for record in records)
    else:
        metrics, samples, forgetting = _multimodal(models, data_dir, records, spec, seed)
        primary = "perplexity"
    return EvaluationReport(
        run_id=run_id,
        base_model=base_model,
        tuned_model_uri=tuned_uri,
        examples=len(records),
        primary=primary,
        metrics=metrics,
        forgetting=forgetting,
        samples=samples,
    )
