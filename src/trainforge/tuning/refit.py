"""The refit: the chosen trial's settings trained once more on the whole training side.

Each trial trains on the training side less its selection slice (``tuning.selection_fraction``), which
scores it; the chosen trial's model has therefore never seen that slice. On small data a fifth of the
examples is a real handicap, so, as scikit-learn's ``refit=True`` does after a search and as Goodfellow et
al. describe after early stopping (Deep Learning, 2016, section 7.8, algorithm 7.2), the run trains the
chosen settings again on everything the trials learnt from or were scored on, and that model is the run's.

How long: the trial's model is the weights of its best validation loss (restored) or of its last step;
the refit keeps the same number of passes over the data, so its step count grows by the slice it now also
trains on. Nothing then chooses among its weights: it validates once, at its end, on the run's held-out
examples (which evaluate it and must choose nothing), with no early stopping; and it measures no
forgetting of its own, which the evaluation's probes and the gate judge as for any run.

Off by default: on the tuning benchmark (docs/benchmarks.md, attempt 5) the refit scored lower than the
chosen trial's own model. A trial chosen by its best validation loss is often mid-schedule when restored,
and a shorter run whose learning rate decays fully is not the same model.

One owner for both tuners: the local runner (``pipeline.local_runner``) and the AWS PrepareRefit step
(``pipeline.handlers``) build the refit's hyperparameters here.
"""

from __future__ import annotations

import json
import math

from trainforge.contracts import TrainingRequest
from trainforge.errors import TrainingFailed
from trainforge.spec import JobSpec
from trainforge.training.config import SAGEMAKER_RESERVED_PREFIXES
from trainforge.tuning.objective import MODEL_STEP


def refit_steps(model_step: int, selection_fraction: float) -> int:
    """The trial's optimizer steps scaled to the whole training side: the same passes over the data."""
    return max(1, math.ceil(model_step / (1.0 - selection_fraction)))


def refit_hyperparameters(chosen: dict[str, str], model_step: int, selection_fraction: float) -> dict[str, str]:
    """The chosen trial's hyperparameters (SageMaker's all-strings mapping, as the trial received them) as a
    plain training job's: the whole training side, a fixed length, one validation at the end, no trial
    figures."""
    steps = refit_steps(model_step, selection_fraction)
    kept = {key: value for key, value in chosen.items() if not key.startswith(SAGEMAKER_RESERVED_PREFIXES)}
    return kept | {
        "max_steps": json.dumps(steps),
        "selection_fraction": json.dumps(0.0),
        "eval_every": json.dumps(steps),
        "early_stopping_patience": "null",
        "max_forgetting": "null",
    }


def refit_request(
    request: TrainingRequest, chosen: dict[str, str], model_step: int | None, spec: JobSpec, trial: str
) -> TrainingRequest:
    """The run's training request as the refit trains it: the chosen trial's settings, refit. ``model_step``
    None: the trial (named by ``trial``) never said how long its model trained (a container from before
    ``model_step`` existed), and a refit of unknown length is refused rather than guessed."""
    assert spec.tuning is not None
    if model_step is None:
        raise TrainingFailed(
            f"{trial} reported no {MODEL_STEP} (its objective line lacks model_step): the refit cannot tell how "
            "long to train; set tuning.refit: false to take the trial's own model"
        )
    hyperparameters = refit_hyperparameters(chosen, model_step, spec.tuning.selection_fraction)
    return request.model_copy(update={"hyperparameters": hyperparameters})
