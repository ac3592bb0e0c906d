"""Forgetting probes: shipped data that loads, comparisons with intervals, the gate's forgetting figure,
batched generation that answers as one-by-one generation does."""

from __future__ import annotations

import pytest

from trainforge.contracts import EvaluationReport, MetricComparison
from trainforge.evaluation.gate import decide
from trainforge.evaluation.probes import forgetting, knowledge_items, probe_comparisons, probe_texts
from trainforge.evaluation.scoring import generate, generate_batch, load_pair
from trainforge.spec import EvaluationSpec


def test_the_shipped_probes_load():
    texts = probe_texts()
    assert len(texts["canary_perplexity"]) >= 10 and len(texts["general_text_perplexity"]) >= 20
    items = knowledge_items()
    assert len(items) >= 40 and all(0 <= item.answer < len(item.choices) == 4 for item in items)


def test_probes_of_a_model_against_itself_and_batched_generation(tiny_model_dir):
    base, tuned, tokenizer = load_pair(tiny_model_dir, tiny_model_dir, "cpu")
    probes = probe_comparisons(base, tuned, tokenizer)
    assert [p.name for p in probes] == ["canary_perplexity", "general_text_perplexity", "knowledge_accuracy"]
    assert all(p.delta == pytest.approx(0.0) and p.ci_low <= 0.0 <= p.ci_high for p in probes)
    prompts = [[{"role": "user", "content": q}] for q in ("hello", "where is my order today", "hi", "reset it")]
    assert generate_batch(base, tokenizer, prompts, 6, batch_size=3) == [
        generate(base, tokenizer, p, 6) for p in prompts
    ]


def _comparison(name: str, base: float, tuned: float, low: float, high: float, higher: bool) -> MetricComparison:
    delta = (tuned - base) if higher else (base - tuned) / base
    return MetricComparison(
        name=name, base=base, tuned=tuned, delta=delta, ci_low=low, ci_high=high, higher_is_better=higher
    )


def test_the_gate_reads_the_worst_text_probe_and_a_sure_knowledge_loss():
    probes = [
        _comparison("canary_perplexity", 10.0, 10.1, -0.02, 0.0, False),
        _comparison("general_text_perplexity", 20.0, 21.4, -0.09, -0.05, False),
        _comparison("knowledge_accuracy", 0.60, 0.40, -0.30, -0.12, True),
    ]
    worst = forgetting(probes)
    assert worst is not None and worst.name == "general_text_perplexity"
    primary = _comparison("perplexity", 8.0, 6.0, 0.2, 0.3, False)
    report = EvaluationReport(
        run_id="r", base_model="b", tuned_model_uri="u", examples=10, metrics=[primary], forgetting=worst, probes=probes
    )
    verdict = decide(report, EvaluationSpec(max_forgetting=0.10))
    assert verdict.passed is False  # forgetting 7% is inside 10%, but knowledge surely fell by more than 10%
    assert any("general text perplexity 20.000 -> 21.400" in r for r in verdict.reasons)
    assert any(r.startswith("knowledge_accuracy fell") for r in verdict.reasons)
    noisy = [*probes[:2], _comparison("knowledge_accuracy", 0.6, 0.5, -0.25, 0.05, True)]
    assert decide(report.model_copy(update={"probes": noisy}), EvaluationSpec(max_forgetting=0.10)).passed
