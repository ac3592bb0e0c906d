"""The tuning objective that refuses forgetting.

A trial's objective is its best validation's score under ``tuning.objective`` (``training.selection``: the
loss, or 1 - exact match), which a tuner minimises; its forgetting is the worst relative perplexity increase
of the text probes (``evaluation.probes``) between the start and the end of its training. A trial whose
forgetting exceeds the spec's ``evaluation.max_forgetting`` is infeasible. Optuna takes that as a
constraint (``constraints_func``); SageMaker AMT has no constraints, so the container prints a constrained
objective of its own, ``tuning_objective``: the loss when feasible, else the loss plus a penalty larger than
any loss, so every feasible trial ranks above every infeasible one.

The training container prints one line of these figures at its end; the metric definitions below are the
regexes SageMaker applies to its log (the local tuner reads the same JSON line). Before it, each periodic
validation is followed by a line with the objective so far (the best validation's yet): AMT's early
stopping compares trials by the objective "for each epoch"
(https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-early-stopping.html), and AMT keeps
the latest value, which is the final, constrained one.
"""

from __future__ import annotations

from typing import Any

from trainforge.contracts import SelectionMetric
from trainforge.training.selection import objective

#: added to an infeasible trial's objective; cross-entropy losses of a language model stay far below it
INFEASIBLE_PENALTY = 1000.0
#: the JSON line's event name and fields
EVENT = "objective"

#: the periodic line's event name (the local tuner prunes on the validation records themselves)
PROGRESS_EVENT = "objective_progress"

#: AMT's metric name -> the field of that line; SageMaker matches each regex on every log line
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-define-metrics-variables.html)
TUNING_METRICS = {
    "tuning:objective": "tuning_objective",
    "tuning:forgetting": "forgetting",
    "tuning:best_eval_loss": "best_eval_loss",
    # tuning.objective exact_match: the chosen step's share of selection examples answered word for word
    "tuning:exact_match": "exact_match",
    # the step whose weights the trial ended with: a refit of the chosen trial trains as long (``tuning.refit``)
    "tuning:model_step": "model_step",
}
OBJECTIVE_METRIC = "tuning:objective"
MODEL_STEP = "tuning:model_step"


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": rf'"{field}": (-?[0-9.eE+-]+)'} for name, field in TUNING_METRICS.items()]


def constrained(value: float, forgetting: float, max_forgetting: float) -> float:
    return value if forgetting <= max_forgetting else value + INFEASIBLE_PENALTY + forgetting


def objective_record(
    metric: SelectionMetric,
    loss: float,
    exact_match: float | None,
    forgetting: float,
    max_forgetting: float,
    model_step: int,
) -> dict[str, Any]:
    """The line the training container prints at the end of a tuning trial: ``objective`` is the score a
    tuner minimises (Optuna takes forgetting as a separate constraint), ``tuning_objective`` the same with
    the infeasible penalty (AMT's)."""
    value = objective(metric, loss, exact_match)
    return {
        "event": EVENT,
        "objective": round(value, 6),
        "tuning_objective": round(constrained(value, forgetting, max_forgetting), 6),
        "best_eval_loss": round(loss, 6),
        **({} if exact_match is None else {"exact_match": round(exact_match, 6)}),
        "forgetting": round(forgetting, 6),
        "feasible": forgetting <= max_forgetting,
        "model_step": model_step,
    }


def progress_record(step: int, best: float) -> dict[str, Any]:
    """The line a tuning trial prints after each periodic validation: the objective were it to end now."""
    return {"event": PROGRESS_EVENT, "step": step, "tuning_objective": round(best, 6)}
