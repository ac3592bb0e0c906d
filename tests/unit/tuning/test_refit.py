"""The refit of the chosen trial (``tuning.refit``): the trial's settings as a plain training job on the
whole training side, as many passes over the data as the trial's model trained, chosen by nothing."""

from __future__ import annotations

import json

import pytest

from trainforge.training.config import TrainConfig
from trainforge.tuning.refit import refit_hyperparameters, refit_steps


@pytest.mark.parametrize(("model_step", "fraction", "expected"), [(50, 0.2, 63), (40, 0.0, 40), (1, 0.5, 2)])
def test_the_refit_trains_as_many_passes_as_the_trials_model(model_step, fraction, expected):
    assert refit_steps(model_step, fraction) == expected


def test_the_refit_is_the_trials_settings_as_a_plain_run_on_the_whole_training_side():
    trial = TrainConfig(
        epochs=3.0, learning_rate=4.5e-4, lora_rank=11, max_forgetting=0.05, selection_fraction=0.2
    ).to_hyperparameters()
    trial["_tuning_objective_metric"] = '"tuning:objective"'  # what AMT adds to each trial's mapping
    config = TrainConfig.from_hyperparameters(refit_hyperparameters(trial, 50, 0.2))
    assert (config.learning_rate, config.lora_rank) == (4.5e-4, 11)  # the chosen settings
    assert config.selection_fraction == 0.0  # the selection slice is trained on
    assert config.max_steps == 63  # 50 steps on 80% of the side: 63 on all of it (max_steps overrides epochs)
    # validated once, at its end, on the held-out examples, which must choose nothing: no early stop, and no
    # earlier weights to restore; and no trial figures (the evaluation's probes and the gate judge forgetting)
    assert config.eval_every == 63 and config.early_stopping_patience is None
    assert config.max_forgetting is None
    assert "_tuning_objective_metric" not in refit_hyperparameters(trial, 50, 0.2)
    assert all(isinstance(v, str) for v in refit_hyperparameters(trial, 50, 0.2).values())
    assert json.loads(refit_hyperparameters(trial, 50, 0.2)["max_steps"]) == 63
