"""TrainConfig: the hyperparameters as the training container receives them.

SageMaker passes every hyperparameter as a string in ``hyperparameters.json``; this is the one place
that turns them back into typed values, with the job spec's defaults.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal

from pydantic import ConfigDict

from trainforge.contracts import SelectionMetric
from trainforge.spec import FormatChoice, Hyperparameters, Method

#: hyperparameter names SageMaker itself adds to a job's mapping (a tuning job's trials get one)
SAGEMAKER_RESERVED_PREFIXES = ("_tuning",)


class TrainConfig(Hyperparameters):
    """Job-spec hyperparameters plus what the pipeline decides (method, format, devices)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "lora"
    data_format: FormatChoice = "auto"
    validation_fraction: float = 0.1
    split_seed: int = 0
    device: Literal["auto", "cpu", "cuda", "neuron"] = "auto"
    keep_checkpoints: int = 2
    #: data.replay_fraction: the share of training sequences that are general text (channel ``replay``, else
    #: the shipped corpus)
    replay_fraction: float = 0.0
    #: a tuning trial: measure forgetting on the text probes at the start and the end, and print the
    #: constrained objective with this budget (``tuning.objective``); None: a plain run, nothing measured
    max_forgetting: float | None = None
    #: a tuning trial: the share of the training records held out again (``tuning.selection_fraction``) for
    #: the validation loss that chooses among trials; the run's own held-out records are then left unseen
    selection_fraction: float = 0.0
    #: what periodic validation chooses the best step by (``training.selection``); a tuning trial's objective
    #: is the same figure (``tuning.objective``)
    selection_metric: SelectionMetric = "eval_loss"
    #: lineage, recorded in the exported model's trainforge.json
    base_model_id: str = ""
    spec_sha256: str = ""

    @classmethod
    def from_hyperparameters(cls, raw: dict[str, Any]) -> TrainConfig:
        """Parse SageMaker's all-strings mapping (JSON values inside strings are decoded). Keys SageMaker adds
        itself are skipped: a tuning job gives each trial ``_tuning_objective_metric``, which the SageMaker Python
        SDK strips as "reserved by SageMaker for tuning jobs"
        (https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/tuner.py)."""
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key.startswith(SAGEMAKER_RESERVED_PREFIXES):
                continue
            if isinstance(value, str):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            values[key] = value
        return cls.model_validate(values)

    def to_hyperparameters(self) -> dict[str, str]:
        """The inverse: what CreateTrainingJob's HyperParameters takes (strings only)."""
        return {key: json.dumps(value) for key, value in self.model_dump(exclude_none=True).items()}

    @property
    def trains_adapter(self) -> bool:
        """LoRA and DPO train a LoRA adapter (DPO's reference model is the adapter-off base)."""
        return self.method in ("lora", "dpo")
