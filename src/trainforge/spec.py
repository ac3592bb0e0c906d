"""JobSpec: what a user writes in ``jobs/NAME.yaml`` (or ``.json``).

Typos in a spec are the most common first-run failure, so unknown keys are errors, and every error names
the key's path, its line in the file and what is allowed there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainforge.contracts import SelectionMetric
from trainforge.errors import SpecInvalid

Method = Literal["lora", "full", "continued_pretraining", "dpo", "custom"]
#: the frameworks of AWS's training containers a custom script runs in (trainforge.custom.frameworks)
Framework = Literal["pytorch", "jax", "tensorflow"]
#: ``auto`` or one of contracts.DataFormat (a test keeps the two lists equal; a Union of the two Literals
#: would answer a typo with two errors instead of one)
FormatChoice = Literal[
    "auto", "chat", "prompt_completion", "bedrock_conversation", "text", "preference", "speech", "multimodal"
]
PiiPolicy = Literal["report", "redact", "reject"]

#: also a prefix of SageMaker and Bedrock resource names, whose patterns allow no '--' and no trailing '-'
_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,39}$")
#: EventBridge Scheduler's recurring forms: rate(N unit) with N >= 1, cron with six fields
_SCHEDULE = re.compile(r"^(rate\([1-9]\d* (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: the largest share of training sequences replay may take (data.replay_fraction and its tuning range)
REPLAY_CAP = 0.5


class DataLimits(_Section):
    max_line_bytes: int = Field(1_000_000, gt=0, description="a longer line is an error, read no further")
    max_records: int = Field(10_000_000, gt=0, description="more records in the dataset reject it")
    max_file_bytes: int = Field(50 * 2**30, gt=0, description="compressed size on the store")
    max_decompressed_bytes: int = Field(
        200 * 2**30, gt=0, description="bytes a .gz may inflate to; a gzip bomb stops here"
    )


class DataSpec(_Section):
    train: str = Field(description="key or URI of a file or a folder of files under datasets/")
    validation: str | None = Field(None, description="None: hold out validation_fraction of train")
    format: FormatChoice = Field("auto", description="the records' format; auto: a majority vote over sampled records")
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="with no validation file: the share of train held out, by a seeded hash of each example",
    )
    split_seed: int = Field(0, description="the seed of that hash: the trainer and evaluator hold out the same")
    pii: PiiPolicy = Field(
        "report",
        description="what PII and secrets do: report (listed), redact (training uses a redacted copy), "
        "reject (the dataset is rejected)",
    )
    near_duplicate_threshold: float = Field(
        0.85, gt=0.0, le=1.0, description="MinHash similarity above which two examples are near duplicates"
    )
    limits: DataLimits = Field(DataLimits(), description="bounds on what validation reads")
    replay_fraction: float = Field(
        0.0,
        ge=0.0,
        le=REPLAY_CAP,
        description="share of the training sequences that are general text replayed to keep what the base model "
        "knew (less forgetting); 0: none",
    )
    replay: str | None = Field(
        None,
        description="with replay_fraction: a text file or folder of the user's under the data root to replay; "
        "None: the public-domain corpus shipped with TrainForge",
    )


class Hyperparameters(_Section):
    epochs: float = Field(1.0, gt=0, description="passes over the training examples (fractions allowed)")
    max_steps: int | None = Field(None, gt=0, description="overrides epochs when set")
    learning_rate: float = Field(2.0e-4, gt=0, lt=1, description="AdamW's peak learning rate")
    batch_size: int = Field(8, gt=0, description="sequences per optimizer micro-batch")
    grad_accum: int = Field(1, gt=0, description="micro-batches summed into one optimizer step")
    max_seq_len: int = Field(
        1024, ge=16, description="tokens per packed sequence; a longer example is truncated (and counted)"
    )
    warmup_ratio: float = Field(
        0.03, ge=0, lt=1, description="share of the steps warming up linearly, then cosine decay to 10% of the peak"
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradients are clipped to this global norm")
    lora_rank: int = Field(16, gt=0, description="lora: the rank of each adapter")
    lora_alpha: int = Field(32, gt=0, description="lora: the adapters' scale is lora_alpha / lora_rank")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="lora: dropout on the adapters' input")
    lora_targets: Literal["all-linear", "attention"] = Field(
        "all-linear",
        description="lora: the layers that get adapters: every linear layer of the decoder, or the attention "
        "projections only (fewer weights change: less forgetting, less capacity)",
    )
    dpo_beta: float = Field(
        0.1, gt=0, description="dpo: the preference loss's beta; larger keeps the model closer to the base model"
    )
    eval_every: int = Field(50, gt=0, description="steps between validation-loss evaluations (and always at the end)")
    checkpoint_every: int = Field(100, gt=0, description="steps between checkpoints (and on SIGTERM)")
    early_stopping_patience: int | None = Field(
        3,
        gt=0,
        description="evaluations in a row that neither beat the best step nor lower the validation loss before "
        "stopping; None: never stops early",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward instead of keeping them: less memory, more compute"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 where the device runs it natively (Ampere or later GPUs, Neuron, CPUs with AVX512-BF16 or AMX), else fp32",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="ddp: a model copy per device; fsdp: weights, gradients and optimizer state sharded "
        "over the devices (FSDP2), for models whose training state does not fit one device",
    )
    seed: int = Field(42, description="seeds the weights' initialisation (adapters), the data order and dropout")


Kind = Literal["float", "int", "choice"]

#: what ``tuning.ranges`` may name (``trainforge.tuning.space`` searches them): setting -> (kind, log scale,
#: only for adapter methods)
TUNABLE: dict[str, tuple[Kind, bool, bool]] = {
    "learning_rate": ("float", True, False),
    "epochs": ("float", False, False),
    "max_steps": ("int", True, False),
    "batch_size": ("int", True, False),
    "warmup_ratio": ("float", False, False),
    "weight_decay": ("float", False, False),
    "lora_rank": ("int", True, True),
    "lora_alpha": ("int", True, True),
    "lora_dropout": ("float", False, True),
    "lora_targets": ("choice", False, True),
    "replay_fraction": ("float", False, False),
}
LORA_TARGETS = ("all-linear", "attention")


def replays(method: str, data_format: str) -> bool:
    """Whether general text can join the training mix (``data.replay_fraction``): supervised and continued
    pretraining on text do; DPO's pairs and the speech and image+text objectives have no place for it."""
    return method != "dpo" and data_format not in ("preference", "speech", "multimodal")


def replay_refusal(spec: JobSpec, data_format: str) -> str | None:
    """Why ``spec`` may not replay general text on data of ``data_format`` (None: it may, or asks none): the
    spec's own check with the format it names, and the plan's with the format validation detected."""
    asked = spec.data.replay_fraction > 0 or (spec.tuning is not None and "replay_fraction" in spec.tuning.ranges)
    if not asked or replays(spec.method, data_format):
        return None
    what = "method dpo" if spec.method == "dpo" else f"data.format {data_format}"
    return (
        f"data.replay_fraction: {what} trains on no general text (DPO learns from preference pairs, speech and "
        "image+text models from their media); set it to 0 and leave it out of tuning.ranges"
    )


def exact_match_refusal(spec: JobSpec, data_format: str) -> str | None:
    """Why ``spec``'s ``tuning.objective: exact_match`` cannot score data of ``data_format`` (None: it can, or
    it asks none): exact match scores answers, which supervised chat and prompt-completion examples have and
    text, preference pairs, speech and image+text examples (their own objectives) do not. The spec's check
    with the format it names and the plan's with the format validation detected, as for replay."""
    if spec.tuning is None or spec.tuning.objective != "exact_match":
        return None
    if spec.method in ("lora", "full") and data_format in ("auto", "chat", "prompt_completion", "bedrock_conversation"):
        return None
    what = f"method {spec.method}" if spec.method not in ("lora", "full") else f"data.format {data_format}"
    return f"tuning.objective: exact_match scores answers, and {what} has none to score; use eval_loss"


def check_ranges(ranges: Mapping[str, Sequence[Any]]) -> None:
    """The spec's ``tuning.ranges``: known names, ``[low, high]`` numbers with low < high (positive on a log
    scale), or for ``lora_targets`` a list of known choices. Raises ValueError saying which and why."""
    for name, bounds in ranges.items():
        if name not in TUNABLE:
            raise ValueError(f"'{name}' cannot be tuned; tunable: {', '.join(TUNABLE)}")
        kind, log, _ = TUNABLE[name]
        if kind == "choice":
            unknown = [value for value in bounds if value not in LORA_TARGETS]
            if not bounds or unknown:
                raise ValueError(f"{name}: choose among {list(LORA_TARGETS)}, not {unknown or 'nothing'}")
            continue
        if len(bounds) != 2 or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
            raise ValueError(f"{name}: give [low, high] as two numbers, not {list(bounds)}")
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high or low < 0 or (log and low <= 0):
            raise ValueError(f"{name}: [low, high] needs 0 {'<' if log else '<='} low < high, not {list(bounds)}")
        if name == "replay_fraction" and high > REPLAY_CAP:
            raise ValueError(f"replay_fraction: at most {REPLAY_CAP} of the training sequences, not {high:g}")


class TuningSpec(_Section):
    objective: SelectionMetric = Field(
        "eval_loss",
        description="what chooses among trials, and each trial's best step: eval_loss, its best validation loss "
        "(minimised); exact_match, the share of its validation examples whose every answer token is the model's "
        "most likely one given the reference before it, which greedy decoding would then reproduce token for "
        "token (maximised, ties to the lower loss), for short answers (classification, extraction), where "
        "the loss stops falling before the answers stop improving. A trial whose forgetting exceeds "
        "evaluation.max_forgetting is infeasible whatever its score",
    )
    max_jobs: int = Field(8, gt=0, le=500, description="training jobs (trials) in all")
    parallel: int = Field(
        2, gt=0, le=100, description="training jobs at a time in AWS (locally trials run one after another)"
    )
    ranges: dict[str, list[float | str]] = Field(
        default_factory=dict,
        description="hyperparameter name -> [low, high] to search between (lora_targets: the choices); names "
        "left out keep the default ranges (docs/job-spec.md, Tuning)",
    )
    early_stopping: bool = Field(
        True,
        description="stop a trial whose objective trails the others' at the same step (AMT early stopping "
        "Auto; Optuna's median pruner on the loop's periodic evaluations)",
    )
    warm_start: bool = Field(
        True, description="AWS: start from the job's previous tuning run (AMT warm start), when there is one"
    )
    selection_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="the share of the training side each trial holds out to score its validations (the "
        "objective, pruning, early stopping), so the run's held-out examples, which evaluate the chosen model, "
        "never choose it; 0: trials score on the held-out examples and the run's figures are then optimistic",
    )
    refit: bool = Field(
        False,
        description="train the chosen trial's settings once more on the whole training side (its selection "
        "slice included), as long in epochs as the trial's model trained, and make that the run's model; false: "
        "the chosen trial's own model (on the tuning benchmark the refit scored lower: docs/benchmarks.md)",
    )

    @field_validator("ranges")
    @classmethod
    def _known_ranges(cls, value: dict[str, list[float | str]]) -> dict[str, list[float | str]]:
        check_ranges(value)
        return value

    @model_validator(mode="after")
    def _refit_has_more_to_train_on(self) -> TuningSpec:
        """With no selection slice the trials already train on the whole training side: a refit would train
        the chosen trial again on the same examples, one more job for nothing."""
        if self.refit and self.selection_fraction == 0:
            raise ValueError(
                "refit: true needs selection_fraction above 0 (with 0 the trials already train on all of it)"
            )
        return self


class ComputeSpec(_Section):
    instance_type: str = Field(
        "ml.g5.2xlarge",
        description="the training job's instance type: ml.trn* runs the Trainium image, any other the CUDA "
        "image (ml.m5/c5: CPU); local: this machine",
    )
    instance_count: int = Field(1, gt=0, description="instances of the training job, one process per device")
    spot: bool = Field(True, description="train on spot capacity (checkpoints let a reclaimed job resume)")
    max_runtime_hours: float = Field(
        24, gt=0, le=28 * 24, description="the training job's MaxRuntimeInSeconds: SageMaker stops it after this"
    )
    max_wait_hours: float | None = Field(
        None,
        gt=0,
        le=28 * 24,
        description="spot only: time allowed waiting for capacity plus running (MaxWaitTimeInSeconds); "
        "None: twice max_runtime_hours, at most 28 days",
    )

    @field_validator("instance_type")
    @classmethod
    def _sagemaker_type(cls, value: str) -> str:
        if value != "local" and not value.startswith("ml."):
            raise ValueError("must be a SageMaker instance type such as ml.trn1.32xlarge, or 'local'")
        return value

    @model_validator(mode="after")
    def _wait_covers_runtime(self) -> ComputeSpec:
        if self.max_wait_hours is not None and self.max_wait_hours < self.max_runtime_hours:
            raise ValueError("max_wait_hours must be at least max_runtime_hours (it includes the run itself)")
        return self


class EvaluationSpec(_Section):
    min_improvement: float = Field(0.05, description="relative perplexity improvement the tuned model needs")
    max_forgetting: float = Field(
        0.05,
        ge=0,
        description="relative perplexity increase allowed on the forgetting probes (canary and general text); "
        "also each tuning trial's constraint",
    )
    tasks: list[str] = Field(default_factory=list, description="lm-eval task names")
    max_examples: int = Field(500, gt=0, description="held-out examples scored, a seeded sample")
    generation_samples: int = Field(
        8,
        ge=0,
        description="of those, examples shown in the report with both models' answers (exact match and F1 "
        "score every example with a reference, generated in batches)",
    )
    max_new_tokens: int = Field(64, gt=0, description="the longest answer generated per sample")
    instance_type: str | None = Field(
        None,
        description="the evaluation job's instance type; None: the smallest single-GPU type that holds "
        "base and tuned model in bf16",
    )
    max_runtime_hours: float = Field(6, gt=0, le=5 * 24, description="the evaluation job's MaxRuntimeInSeconds")


class RolloutSpec(_Section):
    policy: Literal["replace", "canary", "ab", "shadow"] = Field(
        "replace",
        description="replace: the new version takes all traffic once healthy; canary: the same through "
        "SageMaker's deployment guardrails (a slice of capacity first, the stack's alarms roll back; locally as "
        "replace); ab: the new version as a second variant with challenger_percent of requests; shadow: the new "
        "version receives a copy of shadow_percent of requests, its answers discarded. ab and shadow wait for "
        "`trainforge promote` (or rollback)",
    )
    challenger_percent: int = Field(10, ge=1, le=99, description="ab: the new version's share of requests")
    shadow_percent: int = Field(100, ge=1, le=100, description="shadow: the share of requests copied to it")
    canary_percent: int = Field(
        10, ge=1, le=50, description="canary: the share of capacity that takes traffic first (SageMaker: 1-50)"
    )
    canary_wait_minutes: int = Field(
        5, ge=0, le=60, description="canary: how long the first slice serves before the rest follows"
    )
    parity_tolerance: float = Field(
        0.02,
        gt=0,
        le=5,
        description="parity before traffic: the largest difference (nats) allowed between a token's "
        "log-probability on the endpoint and in evaluation; the same engine and dtype differ by ~1e-5, bf16 "
        "against fp32 by 1e-3 to 1e-1",
    )


def _schedule_expression(value: str | None) -> str | None:
    if value is not None and not _SCHEDULE.match(value):
        raise ValueError(
            "must be an EventBridge Scheduler expression: rate(7 days), or cron with six fields "
            "(minutes hours day-of-month month day-of-week year), e.g. cron(0 3 ? * MON *)"
        )
    return value


class ContinuousEvaluationSpec(_Section):
    schedule: str = Field(
        description="when the endpoint's champion and challenger are re-scored on the newest data, the captured "
        "traffic and their serving figures: rate(...) or cron(...) with six fields (UTC)"
    )
    rollback_on_fail: bool = Field(
        False, description="roll the challenger back when it is worse than the champion beyond its interval"
    )

    _schedule = field_validator("schedule")(_schedule_expression)


class DeploySpec(_Section):
    target: Literal["sagemaker_endpoint", "bedrock_import", "local", "none"] = Field(
        "sagemaker_endpoint", description="where a version that passed the gate is served; none: registered only"
    )
    approval: Literal["auto", "manual"] = Field(
        "auto", description="manual: registered PendingManualApproval and not deployed until approved"
    )
    instance_type: str = Field("ml.g5.xlarge", description="the endpoint's instance type")
    instance_count: int = Field(
        1,
        ge=1,
        le=100,
        description="instances behind each of the endpoint's variants; rollout canary needs at least 2",
    )
    engine: Literal["auto", "lmi", "trainforge"] = Field(
        "auto",
        description="what serves a SageMaker endpoint: lmi (AWS's LMI container with vLLM: continuous batching, "
        "tensor parallelism), trainforge (this project's server, in its image), auto (lmi for the "
        "architectures vLLM serves, else trainforge)",
    )
    max_model_len: int = Field(
        4096, ge=16, description="the context length the endpoint serves (LMI sizes its KV cache for it)"
    )
    rollout: RolloutSpec = Field(RolloutSpec(), description="how a new version takes an endpoint's traffic")
    capture_percent: int = Field(
        0,
        ge=0,
        le=100,
        description="share of requests whose body and answer are captured (SageMaker data capture to the "
        "artifacts bucket; locally the same JSONL with PII redacted); 0: off",
    )
    continuous_evaluation: ContinuousEvaluationSpec | None = Field(
        None,
        description="a scheduled re-scoring of the SageMaker endpoint's versions (docs/operations.md, Continuous "
        "evaluation); null: none",
    )

    @model_validator(mode="after")
    def _canary_has_a_slice(self) -> DeploySpec:
        """A canary slice is at most half a variant's instances ("CanarySize ... must be less than or equal
        to 50% of the variant's total instance count",
        https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TrafficRoutingConfig.html), so one
        instance has none: SageMaker would refuse the update after the run trained and passed its gate."""
        if self.target == "sagemaker_endpoint" and self.rollout.policy == "canary" and self.instance_count < 2:
            raise ValueError(
                "rollout.policy canary needs deploy.instance_count of at least 2 (a canary slice is at most half "
                "a variant's instances); with one instance use policy ab (a share of requests to the new version)"
            )
        if self.continuous_evaluation is not None and self.target != "sagemaker_endpoint":
            raise ValueError(
                "continuous_evaluation schedules the re-scoring of a SageMaker endpoint (deploy.target "
                "sagemaker_endpoint); a local endpoint is re-scored by `trainforge evaluate-endpoint NAME`"
            )
        return self


class TriggerSpec(_Section):
    on_new_data: bool = Field(False, description="start a run when data under data.train/validation changes")
    quiet_minutes: int = Field(
        5,
        ge=1,
        le=24 * 60,
        description="on_new_data waits until no object has arrived for this long, so a multi-file upload "
        "starts one run",
    )


class CustomSpec(_Section):
    """Your own training code on SageMaker's script-mode contract, or your own container
    (docs/training.md, Your own code)."""

    entry_point: str | None = Field(
        None, description="the training script, a path inside source (script mode: run as python ENTRY_POINT)"
    )
    source: str | None = Field(
        None,
        description="the folder of the script: a key under the data root (jobs/NAME/src/) or a URI; packed into "
        "sourcedir.tar.gz as the run's own copy",
    )
    framework: Framework | None = Field(
        None,
        description="pytorch | jax | tensorflow: AWS's training container for it and the instance family (jax: "
        "local mode only; AWS has no JAX container that runs a script)",
    )
    requirements: str | None = Field(
        None,
        description="a requirements file inside source, installed before the script runs; in AWS (no internet) "
        "from the source's wheelhouse/ folder",
    )
    evaluation_entry_point: str | None = Field(
        None,
        description="a script inside source that scores the model and writes the report the gate reads; "
        "None: the model must be an HF folder the built-in evaluation reads",
    )
    image: str | None = Field(
        None,
        description="instead of script mode: an ECR image URI of your own that follows the /opt/ml contract "
        "(it runs as IMAGE train), in the stack's account and region, repository PREFIX-custom/...",
    )
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="names and values your script receives as SageMaker delivers them (hyperparameters.json, "
        "--name value arguments, SM_HP_NAME)",
    )

    @model_validator(mode="after")
    def _one_way_to_run(self) -> CustomSpec:
        script = {"entry_point": self.entry_point, "source": self.source, "framework": self.framework}
        if self.image is not None:
            given = [name for name, value in script.items() if value is not None]
            if given or self.requirements or self.evaluation_entry_point:
                raise ValueError(
                    "image runs your own container; leave out entry_point, source, framework, requirements and "
                    "evaluation_entry_point (they describe a script for AWS's framework containers)"
                )
            if not re.match(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^\s]+$", self.image):
                raise ValueError("image must be an ECR image URI: ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME:TAG")
            return self
        missing = [name for name, value in script.items() if value is None]
        if missing:
            raise ValueError(
                f"script mode needs entry_point, source and framework (missing: {', '.join(missing)}); "
                "or give image for a container of your own"
            )
        for name in ("entry_point", "requirements", "evaluation_entry_point"):
            path = getattr(self, name)
            if path is not None and (path.startswith("/") or ".." in path.split("/") or not path.strip()):
                raise ValueError(f"{name} must be a relative path inside source, got {path!r}")
        return self


class JobSpec(_Section):
    name: str = Field(description="names the run ids, the model package group and the endpoint")
    base_model: str = Field(description="a catalog tier or id, or an s3:// / file:// HF-format folder")
    method: Method = Field(
        "lora",
        description="lora (adapters), full (every weight), continued_pretraining (text), dpo (preference pairs)",
    )
    data: DataSpec = Field(description="what to train on and how it is validated")
    hyperparameters: Hyperparameters = Field(
        Hyperparameters(),
        description="the training loop's settings; left out, the Plan step chooses steps, learning rate, LoRA "
        "and warmup from the data and the model and records why (docs/job-spec.md, Auto hyperparameters)",
    )
    tuning: TuningSpec | None = Field(
        None,
        description="a hyperparameter search (SageMaker AMT in AWS, Optuna locally) whose best trial within "
        "evaluation.max_forgetting is the run's model; None: one training job",
    )
    compute: ComputeSpec = Field(ComputeSpec(), description="where and how long training runs")
    evaluation: EvaluationSpec = Field(EvaluationSpec(), description="the gate's thresholds and what is scored")
    deploy: DeploySpec = Field(DeploySpec(), description="where and how a version that passed the gate is served")
    schedule: str | None = Field(
        None, description="retrain on the newest data, if it changed: rate(...) or cron(...) with six fields (UTC)"
    )
    trigger: TriggerSpec = Field(TriggerSpec(), description="runs started by new data")
    custom: CustomSpec | None = Field(
        None, description="method custom: your own training script or container (docs/training.md, Your own code)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 40 or not _NAME.match(value):
            raise ValueError(
                "must be 1-40 lowercase letters, digits or single '-' between them (it names SageMaker and Bedrock "
                "resources)"
            )
        return value

    _schedule = field_validator("schedule")(_schedule_expression)

    @model_validator(mode="after")
    def _cross_field(self) -> JobSpec:
        if self.method == "dpo" and self.data.format not in ("auto", "preference"):
            raise ValueError("method dpo needs data.format preference (or auto)")
        if self.method == "continued_pretraining" and self.data.format not in ("auto", "text"):
            raise ValueError("method continued_pretraining needs data.format text (or auto)")
        for refused in (replay_refusal(self, self.data.format), exact_match_refusal(self, self.data.format)):
            if refused:
                raise ValueError(refused)
        if self.schedule is not None and self.trigger.on_new_data:
            raise ValueError("choose either schedule or trigger.on_new_data, not both")
        self._custom_fields()
        return self

    def _custom_fields(self) -> None:
        """``method: custom`` and a ``custom`` section come together; the built-in loop's settings would be
        silently ignored by a script, so they are refused rather than dropped."""
        if (self.method == "custom") != (self.custom is not None):
            raise ValueError("method custom and the custom section go together: give both or neither")
        if self.custom is None:
            return
        if self.hyperparameters.model_fields_set:
            raise ValueError(
                "method custom: hyperparameters configures the built-in loop, which does not run; give your "
                "script's names and values in custom.hyperparameters"
            )
        if self.tuning is not None:
            raise ValueError("method custom: tuning searches the built-in loop's hyperparameters; leave it out")
        if self.custom.evaluation_entry_point is not None and self.deploy.target != "none":
            raise ValueError(
                "custom.evaluation_entry_point: a model scored by your own evaluation is registered, not served "
                "(the serving engines take the HF folders the built-in evaluation reads); set deploy.target: none"
            )


def _line_map(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    """Record the 1-based line of every key/value so errors can point into the file."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            out[child] = key.start_mark.line + 1
            _line_map(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), out)


def _allowed(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at the parent of ``path``, for 'unknown key' messages."""
    for part in path[:-1]:
        if isinstance(part, int):
            return []
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None) if field else None
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = [a for a in candidates if issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return sorted(model.model_fields)


def spec_sha256(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def parse_spec(text: str | bytes, source: str = "<spec>") -> JobSpec:
    """Parse YAML or JSON (JSON is YAML) into a JobSpec, or raise SpecInvalid naming key and line."""
    raw = text.decode("utf-8") if isinstance(text, bytes) else text
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f"{source}:{line}" if line else source
        raise SpecInvalid(f"{where}: not valid YAML/JSON: {exc}", details=[("", line, str(exc))]) from exc
    if not isinstance(data, dict):
        raise SpecInvalid(f"{source}: a job spec is a mapping of keys (name, base_model, data, ...)")
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(root)"
            line = lines.get(loc) or lines.get(loc[:-1])
            if err["type"] == "extra_forbidden":
                message = f"unknown key '{loc[-1]}'; allowed here: {', '.join(_allowed(JobSpec, loc))}"
            else:
                message = err["msg"]
            problems.append((dotted, line, message))
        text_lines = [
            f"{source}:{line} {path}: {msg}" if line else f"{source} {path}: {msg}" for path, line, msg in problems
        ]
        raise SpecInvalid("invalid job spec:\n  " + "\n  ".join(text_lines), details=problems) from exc
