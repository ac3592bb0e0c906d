"""DPO's held-out metric: a preference run has a primary metric the gate can pass on."""

from __future__ import annotations

import numpy as np

from trainforge.contracts import EvaluationReport
from trainforge.evaluation.gate import decide
from trainforge.evaluation.preference import preference_metrics
from trainforge.evaluation.scoring import load_pair, score
from trainforge.spec import EvaluationSpec

# (pairs, 2): log-likelihood of the chosen and of the rejected answer
BASE = np.array([[-10.0, -9.0], [-8.0, -9.0], [-12.0, -11.0], [-7.0, -9.0]])
TUNED = np.array([[-8.0, -11.0], [-7.0, -10.0], [-9.0, -12.0], [-6.0, -10.0]])


def test_preference_accuracy_and_reward_margin():
    accuracy, margin = preference_metrics(BASE, TUNED, beta=0.1, seed=0)
    assert (accuracy.name, accuracy.base, accuracy.tuned, accuracy.delta) == ("preference_accuracy", 0.5, 1.0, 0.5)
    expected = 0.1 * np.mean((TUNED[:, 0] - BASE[:, 0]) - (TUNED[:, 1] - BASE[:, 1]))
    assert margin.name == "reward_margin" and np.isclose(margin.tuned, expected) and margin.tuned > 0
    assert accuracy.ci_low <= accuracy.delta <= accuracy.ci_high


def test_the_gate_holds_a_dpo_run_to_its_preference_accuracy():
    """A DPO report has no perplexity: the gate reads the report's own primary metric."""
    metrics = preference_metrics(BASE, TUNED, beta=0.1, seed=0)
    report = EvaluationReport(
        run_id="r",
        base_model="b",
        tuned_model_uri="t",
        examples=4,
        primary="preference_accuracy",
        metrics=metrics,
        forgetting=None,
    )
    verdict = decide(report, EvaluationSpec(min_improvement=0.05))
    assert verdict.passed and "preference_accuracy improved by 50.0%" in verdict.reasons[0]
    assert not decide(report, EvaluationSpec(min_improvement=0.6)).passed
    unscored = report.model_copy(update={"metrics": []})
    assert decide(unscored, EvaluationSpec()).reasons == ["the report has no preference_accuracy comparison"]


def test_scoring_preference_data_reports_preference_metrics(tiny_model_dir):
    base, tuned, tokenizer = load_pair(tiny_model_dir, tiny_model_dir, "cpu")
    records = [{"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(6)]
    report = score(
        base, tuned, tokenizer, records, "preference", EvaluationSpec(), run_id="r", base_model="tiny", tuned_uri="t"
    )
    assert report.primary == "preference_accuracy" and report.examples == 6
    assert [m.name for m in report.metrics] == ["preference_accuracy", "reward_margin"]
    assert report.metrics[0].delta == 0 and report.metrics[1].tuned == 0  # the same model on both sides
