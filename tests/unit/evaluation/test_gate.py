"""The gate's decisions on crafted reports."""

from __future__ import annotations

import pytest

from trainforge.contracts import EvaluationReport, MetricComparison
from trainforge.evaluation.gate import decide
from trainforge.spec import EvaluationSpec

THRESHOLDS = EvaluationSpec(min_improvement=0.05, max_forgetting=0.05)


def report(improvement: float, forgetting: float | None) -> EvaluationReport:
    ppl = MetricComparison(
        name="perplexity",
        base=10.0,
        tuned=10.0 * (1 - improvement),
        delta=improvement,
        ci_low=improvement - 0.01,
        ci_high=improvement + 0.01,
        higher_is_better=False,
    )
    canary = None
    if forgetting is not None:
        canary = MetricComparison(
            name="canary_perplexity",
            base=20.0,
            tuned=20.0 * (1 + forgetting),
            delta=-forgetting,
            ci_low=-forgetting - 0.01,
            ci_high=-forgetting + 0.01,
            higher_is_better=False,
        )
    return EvaluationReport(
        run_id="r", base_model="b", tuned_model_uri="t", examples=10, metrics=[ppl], forgetting=canary
    )


@pytest.mark.parametrize(
    ("improvement", "forgetting", "passed", "needle"),
    [
        (0.20, 0.01, True, "perplexity improved by 20.0%"),
        (0.01, 0.00, False, "< required 5.0%"),
        (0.20, 0.10, False, "forgetting 10.0%"),
        (0.05, 0.05, True, "forgetting 5.0%"),  # boundaries are inclusive
        (0.0499, 0.0, False, "< required"),
        (0.05, 0.0501, False, "> allowed"),
        (0.30, None, True, "improved"),
        (-0.10, -0.02, False, "improved by -10.0%"),
    ],
)
def test_decisions(improvement, forgetting, passed, needle):
    verdict = decide(report(improvement, forgetting), THRESHOLDS)
    assert verdict.passed is passed
    assert any(needle in reason for reason in verdict.reasons), verdict.reasons


def test_report_without_primary_metric_fails():
    empty = EvaluationReport(run_id="r", base_model="b", tuned_model_uri="t", examples=0, metrics=[], forgetting=None)
    assert decide(empty, THRESHOLDS).passed is False
