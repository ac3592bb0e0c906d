"""Automatic hyperparameters for a spec that names none: the training length from the data's size, the
learning rate from the method and the model's size, LoRA settings, warmup and the evaluation cadence,
each with the reason it was chosen.

This is the one owner of those choices: the Plan step plans the resolved spec and Prepare sends it to
training (both call :func:`resolve_spec`), so the plan's step count is the run's. The sizes come from the
dataset report through the planner's own packing estimate (``planning.work``), the model's size from its
``config.json``. A spec that sets any hyperparameter keeps its section as written (its unset fields at
the documented defaults): auto applies to a spec that leaves the whole section out (or writes only
defaults; the run folder's copy of the spec holds every field, so "left out" cannot be told apart there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainforge.contracts import DatasetReport
from trainforge.planning.architecture import ModelShape, UnknownArchitecture
from trainforge.planning.work import data_shape, optimizer_steps, pack
from trainforge.spec import Hyperparameters, JobSpec

log = logging.getLogger(__name__)

#: fewer optimizer steps than this rarely moves a model far enough to learn a task from a small dataset
MIN_STEPS = 100
#: ... and more passes than this over a small dataset mostly memorises it (early stopping guards the rest)
MAX_EPOCHS = 8.0
#: a large dataset is cut to this many steps (a fraction of an epoch) unless the spec asks for more
MAX_STEPS = 5000
#: an epoch of fewer optimizer steps than this gets a smaller batch (more, smaller updates)
MIN_STEPS_PER_EPOCH = 10
#: evaluations over a run: early stopping and the tuner's pruning need several
EVALUATIONS = 10
#: the longest packed sequence auto picks; a spec wanting more context says so
MAX_AUTO_SEQ_LEN = 1024

#: the peak learning rate by method and model size (parameters up to the bound): adapters take larger
#: steps than full fine-tuning, larger models smaller ones; DPO stays closer to its reference
_LR_TABLE: dict[str, tuple[tuple[float, float], ...]] = {
    "lora": ((0.5e9, 5e-4), (3e9, 3e-4), (15e9, 2e-4), (math.inf, 1e-4)),
    "dpo": ((3e9, 5e-5), (math.inf, 2e-5)),
    "full": ((0.5e9, 5e-5), (3e9, 2e-5), (15e9, 1e-5), (math.inf, 5e-6)),
    "continued_pretraining": ((0.5e9, 1e-4), (3e9, 5e-5), (15e9, 2e-5), (math.inf, 1e-5)),
}


@dataclass(frozen=True)
class Resolved:
    """The spec as the run trains it, and each automatic choice: setting -> (value, reason)."""

    spec: JobSpec
    choices: dict[str, tuple[Any, str]] = field(default_factory=dict)

    @property
    def auto(self) -> bool:
        return bool(self.choices)

    def record(self) -> dict[str, Any]:
        """What ``resolved_spec.json`` holds: the resolved spec and the choices with their reasons."""
        return {
            "spec": self.spec.model_dump(mode="json"),
            "auto": {name: {"value": value, "reason": reason} for name, (value, reason) in self.choices.items()},
        }

    def notes(self) -> list[str]:
        return [f"auto {name} = {value}: {reason}" for name, (value, reason) in self.choices.items()]


def model_parameters(config: Mapping[str, Any]) -> int | None:
    try:
        return ModelShape.from_config(config).parameters
    except (UnknownArchitecture, KeyError, TypeError, ValueError):
        return None


def learning_rate(method: str, parameters: int | None) -> tuple[float, str]:
    size = parameters if parameters is not None else 1e9
    for bound, rate in _LR_TABLE[method]:
        if size <= bound:
            shown = f"{size / 1e9:.2g}B parameters" if parameters is not None else "an unknown size (taken as 1B)"
            return rate, f"{method} on {shown}: {rate:g} (larger models and full updates take smaller steps)"
    raise AssertionError("the table ends with an unbounded row")


def _seq_len(report: DatasetReport) -> tuple[int, str] | None:
    stats = report.token_stats
    if stats is None:
        return None
    length = max(64, min(MAX_AUTO_SEQ_LEN, 2 ** math.ceil(math.log2(max(stats.max_tokens, 1)))))
    return length, (
        f"the longest example has {stats.max_tokens} tokens: {length} holds it"
        if stats.max_tokens <= length
        else f"examples up to {stats.max_tokens} tokens; {length} is auto's cap (set max_seq_len for more)"
    )


def resolve_spec(spec: JobSpec, report: DatasetReport, model_config: Mapping[str, Any]) -> Resolved:
    """``spec`` with automatic hyperparameters when it sets none, else unchanged (so resolving twice changes
    nothing)."""
    base = Hyperparameters()
    if spec.hyperparameters != base or spec.method == "custom":  # custom code brings its own settings
        return Resolved(spec)
    choices: dict[str, tuple[Any, str]] = {}
    seq = _seq_len(report)
    max_seq_len = base.max_seq_len
    if seq is not None:
        max_seq_len = seq[0]
        choices["max_seq_len"] = seq
    shape = data_shape(spec.model_copy(update={"hyperparameters": base}), report)
    sequences = shape.train.examples if spec.method == "dpo" else pack(shape.train, max_seq_len)
    batch = base.batch_size
    if sequences < batch * MIN_STEPS_PER_EPOCH:
        batch = max(1, sequences // MIN_STEPS_PER_EPOCH)
        choices["batch_size"] = (
            batch,
            f"{sequences} training sequences: a batch of {batch} gives {MIN_STEPS_PER_EPOCH}+ updates an epoch",
        )
    per_epoch = max(1, math.ceil(sequences / batch))
    if per_epoch * MAX_EPOCHS < MIN_STEPS:
        epochs, why = MAX_EPOCHS, f"{per_epoch} steps an epoch: {MAX_EPOCHS:g} epochs, the most auto trains small data"
    elif per_epoch < MIN_STEPS:
        epochs = math.ceil(MIN_STEPS * batch / sequences * 100) / 100  # rounded up: at least MIN_STEPS
        why = f"{per_epoch} steps an epoch: {epochs:g} epochs reach {MIN_STEPS} optimizer steps"
    else:
        epochs, why = 1.0, f"{per_epoch} steps an epoch: one pass is enough"
    if per_epoch > MAX_STEPS:
        choices["max_steps"] = (MAX_STEPS, f"{per_epoch} steps an epoch: {MAX_STEPS} steps, part of an epoch")
    else:
        choices["epochs"] = (epochs, why)
    steps = optimizer_steps(choices.get("max_steps", (None,))[0], epochs, sequences, batch)
    parameters = model_parameters(model_config)
    choices["learning_rate"] = learning_rate(spec.method, parameters)
    if spec.method in ("lora", "dpo"):
        choices["lora_rank"] = (16, "rank 16 adapters: enough capacity for one task, few weights to drift")
        choices["lora_alpha"] = (32, "alpha twice the rank (scale 2), as rank-stable LoRA recipes use")
        dropout = 0.1 if shape.train.examples < 1000 else 0.05
        choices["lora_dropout"] = (dropout, f"{shape.train.examples} training examples: dropout {dropout:g}")
        choices["lora_targets"] = ("all-linear", "adapters on every linear layer learn most per step")
    warmup = round(min(0.1, max(0.03, 10 / steps)), 3)
    choices["warmup_ratio"] = (warmup, f"{steps} steps: about {max(1, int(warmup * steps))} steps of warmup")
    every = max(1, steps // EVALUATIONS)
    choices["eval_every"] = (every, f"{steps} steps: {EVALUATIONS} evaluations for early stopping and pruning")
    choices["checkpoint_every"] = (
        max(1, min(base.checkpoint_every, every * 2)),
        "every second evaluation: a stopped run loses little",
    )
    hyper = base.model_copy(update={name: value for name, (value, _) in choices.items()})
    for name, (value, reason) in choices.items():
        log.info("auto %s = %s: %s", name, value, reason)
    return Resolved(spec.model_copy(update={"hyperparameters": hyper}), choices)
