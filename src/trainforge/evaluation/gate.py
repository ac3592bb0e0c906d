"""The gate: does the tuned model beat its base by the spec's margins without forgetting too much?

It reads only the EvaluationReport, so the decision can be re-made (or audited) from the stored report
alone. The report names its primary metric: held-out perplexity (``min_improvement`` is then a relative
improvement), or for DPO the held-out preference accuracy (``min_improvement`` is then absolute: 0.05 is
five more pairs in a hundred preferred the right way). Thresholds are inclusive: an improvement exactly
equal to ``min_improvement`` passes, a forgetting exactly equal to ``max_forgetting`` passes. The
confidence intervals are quoted in the reasons so a reviewer sees how solid a pass or a fail is.
Forgetting is the worst text probe's perplexity increase (``evaluation.probes``); the knowledge probe
fails the gate only when its whole interval lies beyond ``max_forgetting``.
"""

from __future__ import annotations

from trainforge.contracts import EvaluationReport, GateVerdict
from trainforge.spec import EvaluationSpec

#: the primary metrics of a speech report (``media_scoring``: word or character error rate)
SPEECH_RATES = ("wer", "cer")
#: a speech report has no forgetting measure: no general speech set whose licence allows shipping it comes
#: with TrainForge
SPEECH_FORGETTING_NOTE = (
    "forgetting not checked: no general speech set with a redistributable licence ships with TrainForge"
)


def decide(report: EvaluationReport, thresholds: EvaluationSpec) -> GateVerdict:
    reasons: list[str] = []
    passed = True
    name = report.primary
    primary = next((m for m in report.metrics if m.name == name), None)
    if primary is None:
        return GateVerdict(passed=False, reasons=[f"the report has no {name} comparison"])
    interval = f"95% CI [{primary.ci_low:+.3f}, {primary.ci_high:+.3f}]"
    if primary.delta >= thresholds.min_improvement:
        reasons.append(
            f"{name} improved by {primary.delta:.1%} ({primary.base:.3f} -> {primary.tuned:.3f}, {interval}) >= required {thresholds.min_improvement:.1%}"
        )
    else:
        passed = False
        reasons.append(
            f"{name} improved by {primary.delta:.1%} ({primary.base:.3f} -> {primary.tuned:.3f}, {interval}) < required {thresholds.min_improvement:.1%}"
        )
    if report.forgetting is not None:
        forgetting = -report.forgetting.delta  # delta is an improvement; forgetting is its opposite
        canary = (
            f"{report.forgetting.name.replace('_', ' ')} {report.forgetting.base:.3f} -> {report.forgetting.tuned:.3f}"
        )
        if forgetting <= thresholds.max_forgetting:
            reasons.append(f"forgetting {forgetting:.1%} ({canary}) <= allowed {thresholds.max_forgetting:.1%}")
        else:
            passed = False
            reasons.append(f"forgetting {forgetting:.1%} ({canary}) > allowed {thresholds.max_forgetting:.1%}")
    for probe in report.probes:
        # an accuracy probe is small and noisy: it fails the gate only when even its interval's best case
        # has lost more than the budget
        if probe.higher_is_better and probe.ci_high < -thresholds.max_forgetting:
            passed = False
            reasons.append(
                f"{probe.name} fell {probe.base:.3f} -> {probe.tuned:.3f} (95% CI of the change "
                f"[{probe.ci_low:+.3f}, {probe.ci_high:+.3f}]): a loss beyond {thresholds.max_forgetting:.1%} for sure"
            )
    if report.forgetting is None and report.primary in SPEECH_RATES:
        reasons.append(SPEECH_FORGETTING_NOTE)
    return GateVerdict(passed=passed, reasons=reasons)
