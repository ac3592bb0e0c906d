"""The hyperparameter search space: which settings a tuning job varies and between what bounds.

Default ranges are centred on the run's own settings (the spec's, or the automatic ones from
``tuning.auto``), so a search starts around what a single run would have used; the spec's ``tuning.ranges``
replaces the range of each setting it names. One table of tunable settings serves both engines: Optuna's
``suggest_*`` calls locally, and AMT's ``ParameterRanges`` in AWS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainforge.spec import LORA_TARGETS, REPLAY_CAP, TUNABLE, Kind, replays

if TYPE_CHECKING:
    from trainforge.contracts import TrainingRequest
    from trainforge.spec import JobSpec


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"


def default_space(settings: Mapping[str, Any], adapter: bool, steps_bound: bool) -> dict[str, Param]:
    """Ranges around ``settings`` (the run's resolved hyperparameters): the learning rate a factor of 4 either
    way, the length of training from half to twice (``max_steps`` when the run is step-bound, else
    ``epochs``), batch from half to twice, warmup 0-15%, weight decay 0-0.1, replayed general text from none
    to 30% (or twice the run's own share) where the run's objective takes any (``spec.replays``), and for adapters rank 4-64, alpha 4-128, dropout 0-0.2 and the
    choice of target layers."""
    lr = float(settings["learning_rate"])
    batch = int(settings["batch_size"])
    replay = float(settings.get("replay_fraction") or 0.0)
    space = {
        "learning_rate": Param("learning_rate", "float", lr / 4, min(lr * 4, 0.5), log=True),
        "batch_size": Param("batch_size", "int", max(1, batch // 2), max(2, batch * 2), log=True),
        "warmup_ratio": Param("warmup_ratio", "float", 0.0, 0.15),
        "weight_decay": Param("weight_decay", "float", 0.0, 0.1),
    }
    if replays(str(settings.get("method", "lora")), str(settings.get("data_format", "auto"))):
        # forgetting's own lever: general text replayed beside the task's (a share of training sequences)
        space["replay_fraction"] = Param("replay_fraction", "float", 0.0, max(0.3, min(2 * replay, REPLAY_CAP)))
    if steps_bound:
        steps = int(settings["max_steps"])
        space["max_steps"] = Param("max_steps", "int", max(1, steps // 2), max(2, steps * 2), log=True)
    else:
        epochs = float(settings["epochs"])
        space["epochs"] = Param("epochs", "float", round(epochs / 2, 3), round(epochs * 2, 3))
    if adapter:
        space |= {
            "lora_rank": Param("lora_rank", "int", 4, 64, log=True),
            "lora_alpha": Param("lora_alpha", "int", 4, 128, log=True),
            "lora_dropout": Param("lora_dropout", "float", 0.0, 0.2),
            "lora_targets": Param("lora_targets", "choice", choices=LORA_TARGETS),
        }
    return space


def search_space(settings: Mapping[str, Any], ranges: Mapping[str, Sequence[Any]], adapter: bool) -> dict[str, Param]:
    """The default space with the spec's ranges in place of the defaults they name (a range for a LoRA
    setting is ignored by a method without an adapter; ``max_steps`` and ``epochs`` replace each other)."""
    space = default_space(settings, adapter, steps_bound=settings.get("max_steps") is not None)
    if "epochs" in ranges:
        space.pop("max_steps", None)
    if "max_steps" in ranges:
        space.pop("epochs", None)
    for name, bounds in ranges.items():
        kind, log, lora_only = TUNABLE[name]
        if lora_only and not adapter:
            continue
        if kind == "choice":
            space[name] = Param(name, kind, choices=tuple(str(b) for b in bounds))
        else:
            space[name] = Param(name, kind, float(bounds[0]), float(bounds[1]), log=log)
    return space


def amt_ranges(space: Mapping[str, Param]) -> dict[str, list[dict[str, Any]]]:
    """AMT's ParameterRanges (values are strings; a log scale needs a positive low bound:
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContinuousParameterRange.html)."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for param in space.values():
        if param.kind == "choice":
            ranges["CategoricalParameterRanges"].append({"Name": param.name, "Values": list(param.choices)})
            continue
        scaling = "Logarithmic" if param.log and param.low > 0 else "Linear"
        if param.kind == "int":
            low, high = str(int(param.low)), str(int(param.high))
            ranges["IntegerParameterRanges"].append(
                {"Name": param.name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
            )
        else:
            ranges["ContinuousParameterRanges"].append(
                {
                    "Name": param.name,
                    "MinValue": f"{param.low:g}",
                    "MaxValue": f"{param.high:g}",
                    "ScalingType": scaling,
                }
            )
    return {kind: values for kind, values in ranges.items() if values}


def trial_space(request: TrainingRequest, spec: JobSpec) -> dict[str, Param]:
    """The search space around the run's resolved settings (its training request's hyperparameters)."""
    from trainforge.training.config import TrainConfig  # pydantic only

    settings = TrainConfig.from_hyperparameters(request.hyperparameters)
    assert spec.tuning is not None
    return search_space(settings.model_dump(), spec.tuning.ranges, settings.trains_adapter)
