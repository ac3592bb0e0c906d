"""Local tuning with Optuna: each trial a ``trainforge-train`` process on the same ``/opt/ml`` contract as
a single run (``local.launcher``), the study in SQLite under the run's folder.

- Sampler: TPE (seeded by the spec's seed), with forgetting minus its budget as the trial's constraint
  (``Trial.set_constraint``: feasible at zero or less), so the sampler learns to stay inside the budget
  (https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html).
- Pruning: the objective of each of the loop's periodic validations (its loss, or 1 - exact match:
  ``tuning.objective``) is reported to the trial as it is printed; a trial the median pruner stops is killed
  (``tuning.early_stopping``).
- Resuming: the study lives in ``tune/study.db``. A trial left running by a killed study is marked failed
  and its settings queued again; each setting's trial trains in a folder named by a hash of its settings,
  so the rerun resumes from that trial's own checkpoints rather than from scratch.

Trials run one after another (``tuning.parallel`` applies in AWS, where each trial has its own instance).
The best feasible trial's settings, refit on the whole training side (``tuning.refit``), or its own model
become the run's; when no trial is feasible the run fails saying so.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge.contracts import SelectionMetric, TrainingRequest, TrialSummary
from trainforge.errors import TrainingFailed
from trainforge.spec import JobSpec
from trainforge.training.selection import objective
from trainforge.tuning.objective import EVENT
from trainforge.tuning.space import Param, trial_space

STUDY_FILE = "study.db"
TRIALS_FILE = "trials.json"
#: a trial that failed for its own reason (not a killed study) carries this user attribute
ERROR = "error"

OnTrial = Callable[[TrialSummary], None]


class InfeasibleStudy(TrainingFailed):
    """Every trial that finished forgot more than ``evaluation.max_forgetting`` allows."""


@dataclass(frozen=True)
class StudyResult:
    best: TrialSummary
    trials: list[TrialSummary]
    model_dir: Path
    hyperparameters: dict[str, str]
    metrics_file: Path
    #: the step whose weights the best trial ended with (``tuning.refit`` trains as many passes); None from a
    #: study whose trials ran before they recorded it
    model_step: int | None


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for param in space.values():
        if param.kind == "choice":
            params[param.name] = trial.suggest_categorical(param.name, list(param.choices))
        elif param.kind == "int":
            params[param.name] = trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
        else:
            params[param.name] = trial.suggest_float(param.name, param.low, param.high, log=param.log)
    return params


def trial_key(params: dict[str, Any]) -> str:
    """The folder of a trial's settings: a rerun of the same settings resumes from its checkpoints."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def summarize(trial: Any, max_forgetting: float, metric: SelectionMetric = "eval_loss") -> TrialSummary:
    """One Optuna trial as the reports show it."""
    import optuna

    attrs = trial.user_attrs
    forgetting = attrs.get("forgetting")
    if trial.state == optuna.trial.TrialState.COMPLETE:
        state = "complete" if forgetting is not None and forgetting <= max_forgetting else "infeasible"
    elif trial.state == optuna.trial.TrialState.PRUNED:
        state = "pruned"
    elif trial.state == optuna.trial.TrialState.RUNNING:
        state = "running"
    else:
        state = "failed"
    return TrialSummary(
        number=trial.number,
        state=state,
        params=dict(trial.params),
        objective=trial.value if trial.value is not None and math.isfinite(trial.value) else None,
        metric=metric,
        eval_loss=attrs.get("eval_loss"),
        forgetting=forgetting,
        job_name=attrs.get("key"),
    )


def best_feasible(trials: list[TrialSummary], max_forgetting: float) -> TrialSummary:
    """The complete trial of lowest objective among those within the forgetting budget, equal objectives going
    to the lower loss (as ``training.selection`` ranks a trial's own validations: exact match on a few dozen
    selection examples ties often); InfeasibleStudy naming each trial's forgetting when none is."""
    feasible = [t for t in trials if t.state == "complete" and t.objective is not None]
    if feasible:
        return min(feasible, key=lambda t: (t.objective, math.inf if t.eval_loss is None else t.eval_loss, t.number))
    finished = [t for t in trials if t.state == "infeasible"]
    if finished:
        each = ", ".join(f"trial {t.number}: {t.forgetting:+.1%}" for t in finished if t.forgetting is not None)
        raise InfeasibleStudy(
            f"no feasible trial: every trial that finished forgot more than evaluation.max_forgetting "
            f"({max_forgetting:.1%}) allows ({each}); raise max_forgetting, set data.replay_fraction, or narrow "
            "tuning.ranges (a lower learning_rate, lora_targets: [attention])"
        )
    states = ", ".join(f"trial {t.number}: {t.state}" for t in trials) or "none ran"
    raise TrainingFailed(f"no trial of the tuning study finished ({states}); see tune/trial-*/logs/train.log")


def _requeue_interrupted(study: Any) -> None:
    """Trials a killed study left running: marked failed (without an error of their own) and queued again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), skip_if_exists=False)


def _counted(trial: Any) -> bool:
    import optuna

    state = optuna.trial.TrialState
    return trial.state in (state.COMPLETE, state.PRUNED) or (trial.state == state.FAIL and ERROR in trial.user_attrs)


def run_study(request: TrainingRequest, spec: JobSpec, study_dir: Path, on_trial: OnTrial | None = None) -> StudyResult:
    """Run (or resume) the run's study to ``tuning.max_jobs`` finished trials; return its best feasible trial."""
    import optuna

    from trainforge.local.launcher import StopJob, run_training_job

    assert spec.tuning is not None
    tuning, budget = spec.tuning, spec.evaluation.max_forgetting
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir.mkdir(parents=True, exist_ok=True)
    space = trial_space(request, spec)
    seed = spec.hyperparameters.seed
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, tuning.max_jobs // 3))
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if tuning.early_stopping
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=request.run_id,
        storage=f"sqlite:///{study_dir / STUDY_FILE}",
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
    _requeue_interrupted(study)
    while sum(_counted(t) for t in study.get_trials(deepcopy=False)) < tuning.max_jobs:
        trial = study.ask()
        params = suggest(trial, space)
        key = trial_key(params)
        trial.set_user_attr("key", key)
        hyperparameters = {**request.hyperparameters, **{name: json.dumps(value) for name, value in params.items()}}
        figures: dict[str, Any] = {}

        def on_record(record: dict[str, Any], trial: Any = trial, figures: dict[str, Any] = figures) -> None:
            if "eval_loss" in record and "step" in record:
                value = objective(tuning.objective, float(record["eval_loss"]), record.get("eval_exact_match"))
                trial.report(value, int(record["step"]))
                if trial.should_prune():
                    raise StopJob(f"pruned at step {record['step']}")
            elif record.get("event") == EVENT:
                figures.update(record)

        trial_dir = study_dir / f"trial-{key}"
        trial_request = request.model_copy(update={"hyperparameters": hyperparameters})
        try:
            run_training_job(trial_request, trial_dir / "opt-ml", trial_dir / "model", on_record)
        except StopJob:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except TrainingFailed as exc:
            trial.set_user_attr(ERROR, str(exc)[:2000])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            if "forgetting" not in figures:
                trial.set_user_attr(ERROR, "the trial printed no objective line")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                trial.set_user_attr("forgetting", float(figures["forgetting"]))
                trial.set_user_attr("eval_loss", float(figures["best_eval_loss"]))
                trial.set_user_attr("model_step", int(figures["model_step"]))
                trial.set_constraint("forgetting", float(figures["forgetting"]) - budget)  # feasible at <= 0
                study.tell(trial, float(figures["objective"]))
        if on_trial is not None:
            on_trial(summarize(study.get_trials(deepcopy=False)[trial.number], budget, tuning.objective))
    trials = [summarize(t, budget, tuning.objective) for t in study.get_trials(deepcopy=False) if _counted(t)]
    best = best_feasible(trials, budget)
    trials = [t.model_copy(update={"best": t.number == best.number}) for t in trials]
    (study_dir / TRIALS_FILE).write_text(json.dumps([t.model_dump() for t in trials], indent=2))
    best_dir = study_dir / f"trial-{best.job_name}"
    best_params = {name: json.dumps(value) for name, value in best.params.items()}
    model_step = study.get_trials(deepcopy=False)[best.number].user_attrs.get("model_step")
    return StudyResult(
        best=best.model_copy(update={"best": True}),
        trials=trials,
        model_dir=best_dir / "model",
        hyperparameters={**request.hyperparameters, **best_params},
        metrics_file=best_dir / "opt-ml" / "checkpoints" / "metrics.jsonl",
        model_step=model_step,
    )


def adopt_best(result: StudyResult, model_dir: Path, metrics_file: Path) -> Path:
    """The best trial's model and metric history as the run's own (what evaluation and the registry read)."""
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(result.model_dir, model_dir)
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    if result.metrics_file.is_file():
        shutil.copyfile(result.metrics_file, metrics_file)
    return model_dir
