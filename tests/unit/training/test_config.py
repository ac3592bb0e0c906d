"""The hyperparameters a job receives, read back into a TrainConfig."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainforge.training.config import TrainConfig


def test_round_trip_through_sagemakers_strings() -> None:
    config = TrainConfig(max_steps=7, learning_rate=3e-4, lora_rank=4)
    assert TrainConfig.from_hyperparameters(config.to_hyperparameters()) == config


def test_the_key_a_tuning_job_adds_to_each_trial_is_skipped() -> None:
    """A tuning job's trials receive ``_tuning_objective_metric`` beside the request's own keys: refusing it
    would fail every trial at start."""
    raw = {**TrainConfig(max_steps=7).to_hyperparameters(), "_tuning_objective_metric": "tuning_objective"}
    assert TrainConfig.from_hyperparameters(raw).max_steps == 7


def test_an_unknown_key_is_still_refused() -> None:
    with pytest.raises(ValidationError, match="learnig_rate"):
        TrainConfig.from_hyperparameters({"learnig_rate": "0.1"})
