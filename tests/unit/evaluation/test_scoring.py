"""Perplexity by hand, a seeded and stable bootstrap, text metrics, and a full evaluation on tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from tests.conftest import chat
from trainforge.evaluation.bootstrap import paired_interval, relative_ppl_improvement
from trainforge.evaluation.perplexity import example_nll, perplexity
from trainforge.evaluation.text_metrics import exact_match, rouge_l, token_f1
from trainforge.training.tokenize import IGNORE, Example


def test_perplexity_matches_a_hand_computed_value(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    examples = [Example([5, 6, 7, 8], [IGNORE, IGNORE, 7, 8]), Example([9, 10, 11], [IGNORE, 10, 11])]
    sums, counts = example_nll(model, examples, batch_size=2)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in examples:
            log_probs = F.log_softmax(model(input_ids=torch.tensor([example.input_ids])).logits[0], dim=-1)
            for position in range(1, len(example.input_ids)):
                if example.labels[position] != IGNORE:
                    total -= float(log_probs[position - 1, example.input_ids[position]])
                    tokens += 1
    assert counts.tolist() == [2, 2]
    assert math.isclose(perplexity(sums, counts), math.exp(total / tokens), rel_tol=1e-5)


def test_bootstrap_is_seeded_and_stable():
    rng = np.random.default_rng(1)
    base = (rng.uniform(1, 3, 200), np.full(200, 10))
    tuned = (base[0] * 0.8, base[1])
    statistic = relative_ppl_improvement(base, tuned)
    first = paired_interval(statistic, 200, seed=7)
    assert first == paired_interval(statistic, 200, seed=7)
    assert first != paired_interval(statistic, 200, seed=8)
    assert first[0] < statistic(np.arange(200)) < first[1]
    assert first[0] > 0  # a real improvement has an interval above zero


def test_text_metrics():
    assert exact_match("The Paris.", "paris") == 1.0 and exact_match("Lyon", "Paris") == 0.0
    assert token_f1("capital is paris", "paris is the capital of france") == 2 * 1.0 * 0.6 / 1.6
    assert rouge_l("x b c d", "x c d") == 2 * (3 / 4) * 1.0 / (3 / 4 + 1.0)  # LCS "x c d"
    assert rouge_l("a b c", "b c") == 1.0  # articles are ignored, as in SQuAD
    assert rouge_l("", "x") == 0.0


def test_evaluate_contract_end_to_end(tmp_path, tiny_model_dir):
    from trainforge.evaluation.entrypoint import main
    from trainforge.local.opt_ml import prepare_processing_tree

    data = tmp_path / "data" / "validation.jsonl"
    data.parent.mkdir()
    data.write_text(
        "\n".join(json.dumps(chat(f"question {i}", "paris is the capital of france")) for i in range(12)) + "\n"
    )
    metrics = tmp_path / "metrics" / "metrics.jsonl"
    metrics.parent.mkdir()
    metrics.write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.0}\n{"step": 2, "eval_loss": 4.5}\n')
    root = prepare_processing_tree(
        tmp_path / "processing",
        {"model": tiny_model_dir, "base_model": tiny_model_dir, "data": data.parent, "metrics": metrics.parent},
        {
            "run_id": "run-1",
            "base_model": "tiny-llama-test",
            "evaluation": {"min_improvement": 0.0, "generation_samples": 2, "max_new_tokens": 4},
        },
    )
    assert main(["--processing-root", str(root)]) == 0
    report = json.loads((root / "output/report.json").read_text())
    ppl = next(m for m in report["metrics"] if m["name"] == "perplexity")
    assert ppl["base"] == ppl["tuned"] and ppl["delta"] == 0.0  # same model on both sides
    assert report["forgetting"]["delta"] == 0.0 and report["verdict"]["passed"] is True
    assert {m["name"] for m in report["metrics"]} == {"perplexity", "exact_match", "token_f1", "rouge_l"}
    assert len(report["samples"]) == 2 and report["examples"] == 12
    html = (root / "output/report.html").read_text()
    assert "<svg" in html and "Gate: PASSED" in html and "<script" not in html
