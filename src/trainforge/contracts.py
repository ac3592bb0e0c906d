"""Every payload that crosses a pipeline state.

The state machine's payload carries URIs, hashes and small numbers, never rows of data: the Step
Functions state limit is 256 KiB and execution history must not hold private data. Each model is frozen
and forbids unknown fields so that a producer and a consumer that drift apart fail loudly, and each
carries ``schema_version`` so a stored report can be read by a later TrainForge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: what a run's periodic validation chooses its best step by, and a tuning trial's objective
#: (trainforge.training.selection; the job spec's tuning.objective)
SelectionMetric = Literal["eval_loss", "exact_match"]
DataFormat = Literal["chat", "prompt_completion", "bedrock_conversation", "text", "preference", "speech", "multimodal"]
Trigger = Literal["upload", "schedule", "cli", "watch"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every boundary payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = 1


# --- data validation -------------------------------------------------------------------------------


class DataIssue(Contract):
    """One problem in the data, located precisely enough to fix it."""

    file: str
    line: int | None = Field(None, description="1-based line number; None for whole-file problems")
    field: str = Field("", description="JSON path of the field, e.g. $.messages[2].content")
    code: str = Field(description="stable identifier, e.g. missing_field; see docs/data-formats.md")
    message: str

    def render(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        field = f" {self.field}" if self.field else ""
        return f"{where}{field}: {self.message}"


class PiiFinding(Contract):
    file: str
    line: int
    field: str
    kind: str
    action: Literal["reported", "redacted", "rejected"]


class TokenStats(Contract):
    tokenizer: str
    total_tokens: int
    mean_tokens: float
    max_tokens: int
    p50_tokens: int
    p95_tokens: int
    truncated_examples: int = Field(description="examples longer than max_seq_len")
    max_seq_len: int
    histogram: dict[str, int] = Field(description="token-length bucket upper bound -> count")


class SplitStats(Contract):
    seed: int
    validation_fraction: float
    train_examples: int
    validation_examples: int


class MediaObject(Contract):
    """One audio or image object a valid record names, as validation read it: the version it read (S3's
    VersionId; the local store's ``mtime-size``) and the sha256 of those bytes. Prepare copies exactly this
    version into the run (``media/manifest.py``), so training reads the bytes validation vouched for."""

    uri: str = Field(description="the object, as the records' folder and the reference resolve it (unpinned)")
    version_id: str | None
    sha256: str
    size: int
    file: str = Field(description="the records file of the first valid record that names it")
    line: int
    reference: str = Field(description="the key as that record wrote it")


class DatasetReport(Contract):
    ok: bool
    files: list[str]
    format: DataFormat | None
    format_detected: bool = Field(description="True when format: auto chose the format")
    bytes_read: int
    records: int
    valid_records: int
    errors: list[DataIssue] = Field(description="capped per error code; error_counts has the totals")
    error_counts: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    exact_duplicates: int = 0
    near_duplicates: int = 0
    duplicate_examples: list[DataIssue] = Field(default_factory=list)
    pii_policy: Literal["report", "redact", "reject"] = "report"
    pii_counts: dict[str, int] = Field(default_factory=dict)
    pii_findings: list[PiiFinding] = Field(default_factory=list)
    token_stats: TokenStats | None = None
    split: SplitStats | None = None
    sha256: dict[str, str] = Field(default_factory=dict, description="file -> sha256 of its bytes")
    report_uri: str | None = None
    redacted_uris: list[str] = Field(default_factory=list, description="pii: redact: the redacted copies written")
    audio_hours: float | None = Field(None, description="speech: the valid records' audio, in hours")
    images: int | None = Field(None, description="multimodal: the valid records' images")
    #: in memory only (a state's payload has 256 KiB): the Validate step stores it as ``media_manifest_uri``
    media: list[MediaObject] = Field(
        default_factory=list, exclude=True, description="the media valid records name, each version as read"
    )
    media_manifest_uri: str | None = Field(None, description="where the run's validated media versions are listed")
    created_at: datetime = Field(default_factory=utcnow)


class SpecReport(Contract):
    """The check of an uploaded job spec (jobs/NAME.yaml): its problems use the same located DataIssue."""

    ok: bool
    spec_uri: str
    job_name: str | None = None
    errors: list[DataIssue] = Field(default_factory=list)
    report_uri: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


# --- pipeline --------------------------------------------------------------------------------------


class DatasetRef(Contract):
    uri: str
    version_id: str | None = None
    sha256: str | None = None


class RunRequest(Contract):
    run_id: str
    job_name: str
    spec_uri: str
    spec_sha256: str
    spec_version_id: str | None = None
    datasets: list[DatasetRef]
    trigger: Trigger
    artifacts_uri: str = Field(description="runs/RUN_ID/ under the artifacts root")
    created_at: datetime = Field(default_factory=utcnow)


class VpcConfig(Contract):
    subnets: list[str]
    security_group_ids: list[str]


class TrainingRequest(Contract):
    """A prepared training job: what to run where. ``pipeline.sagemaker_jobs`` turns it into the
    CreateTrainingJob request; the local launcher runs it as a subprocess."""

    run_id: str
    job_name: str
    training_job_name: str
    image: str
    instance_type: str
    instance_count: int
    spot: bool
    max_runtime_seconds: int
    max_wait_seconds: int | None = Field(None, description="spot only: capacity wait plus run time (MaxWait)")
    volume_size_gb: int = Field(description="storage per instance: EBS size, or at most the local NVMe size")
    channels: dict[str, str] = Field(description="channel name -> URI (train, validation, base_model)")
    hyperparameters: dict[str, str] = Field(description="string values, as SageMaker passes them")
    environment: dict[str, str] = Field(
        default_factory=dict, description="container environment chosen by instance family (processes per node)"
    )
    checkpoint_uri: str
    output_uri: str


class EvaluationRequest(Contract):
    """A prepared evaluation job (tuned vs base): ``pipeline.sagemaker_jobs`` turns it into the
    CreateProcessingJob request; the local launcher runs it as a subprocess."""

    run_id: str
    processing_job_name: str
    image: str
    instance_type: str
    inputs: dict[str, str] = Field(description="input name -> URI: model, base_model, data, config, metrics")
    output_uri: str
    environment: dict[str, str] = Field(default_factory=dict)
    max_runtime_seconds: int
    volume_size_gb: int


class TrainingResult(Contract):
    run_id: str
    #: the SageMaker training job that produced the model (None locally)
    training_job_name: str | None = None
    model_uri: str
    metrics: dict[str, float]
    metrics_uri: str
    checkpoint_uri: str
    wall_seconds: float
    tokens_seen: int
    billable_seconds: float | None = None
    cost_estimate_usd: float | None = None


class MetricComparison(Contract):
    name: str
    base: float
    tuned: float
    delta: float = Field(
        description="improvement, positive is better: relative for perplexities, absolute for [0, 1] scores"
    )
    ci_low: float
    ci_high: float
    higher_is_better: bool


class TrialSummary(Contract):
    """One trial of a tuning job: its settings, its objective (its best validation's score under ``metric``)
    and its forgetting."""

    number: int
    state: Literal["complete", "pruned", "infeasible", "failed", "running"]
    params: dict[str, float | int | str]
    objective: float | None = None
    metric: SelectionMetric = Field("eval_loss", description="what the objective is: the loss or 1 - exact match")
    eval_loss: float | None = Field(
        None,
        description="the loss of the validation the objective is from (local trials; AMT keeps the objective only)",
    )
    forgetting: float | None = Field(None, description="the worst text probe's relative perplexity increase")
    best: bool = False
    job_name: str | None = None


class SampleGeneration(Contract):
    prompt: str
    reference: str | None
    base: str
    tuned: str


class GateVerdict(Contract):
    passed: bool
    reasons: list[str]


class EvaluationReport(Contract):
    run_id: str
    base_model: str
    tuned_model_uri: str
    examples: int
    #: the metric the gate holds to min_improvement: perplexity, or preference_accuracy for DPO
    primary: str = "perplexity"
    metrics: list[MetricComparison]
    forgetting: MetricComparison | None
    #: every forgetting probe (canary and general-text perplexity, knowledge accuracy), each with its CI
    probes: list[MetricComparison] = Field(default_factory=list)
    #: the tuning job's trials, when the run searched hyperparameters (``trainforge.tuning``)
    trials: list[TrialSummary] = Field(default_factory=list)
    samples: list[SampleGeneration] = Field(default_factory=list)
    lm_eval: dict[str, float] = Field(default_factory=dict)
    verdict: GateVerdict | None = None
    report_uri: str | None = None
    html_uri: str | None = None


class ModelVersion(Contract):
    run_id: str
    registry: Literal["mlflow", "sagemaker"]
    name: str
    version: str
    arn: str | None = None
    approval: Literal["Approved", "PendingManualApproval", "Rejected"]
    model_uri: str
    bom_uri: str


class Deployment(Contract):
    run_id: str
    target: Literal["sagemaker_endpoint", "bedrock_import", "local", "none"]
    endpoint_name: str | None = None
    url: str | None = None
    model_arn: str | None = None
    traffic: dict[str, int] = Field(default_factory=dict)
    status: str
    #: a canary's endpoint configuration: the endpoint must end on it, or its alarms rolled the update back
    endpoint_config: str | None = None


class RunFailure(Contract):
    run_id: str
    state: str
    error: str
    cause: str
    log_uris: list[str] = Field(default_factory=list)
    #: SageMaker jobs of the run that were still running and were stopped (they bill until stopped)
    stopped_jobs: list[str] = Field(default_factory=list)
    report_uri: str | None = None
    hint: str = ""
    created_at: datetime = Field(default_factory=utcnow)


# --- the plan: time, cost, memory and deployability before any compute (trainforge.planning) -------------


class PlannedWork(Contract):
    """What the run will compute, from the dataset report's token counts (the base model's tokenizer)."""

    tokenizer: str
    examples: int = Field(description="examples trained on (the training side of the split)")
    tokens: int = Field(description="their tokens after truncation to max_seq_len")
    truncated_examples: int
    sequences: int = Field(description="rows of one optimizer micro-batch: packed sequences, or DPO pairs")
    padding_fraction: float
    tokens_per_step: int = Field(description="positions computed per optimizer step, over every process")
    steps: int
    epochs: float
    trained_tokens: int = Field(description="real (unpadded) tokens the steps go through")
    validation_tokens: int = Field(description="tokens of the held-out side, scored at every eval_every")
    evaluation_examples: int
    evaluation_tokens: int = Field(description="tokens the evaluation job scores, per model")
    generated_tokens: int = Field(description="tokens the evaluation job generates, per model")


class PlannedMemory(Contract):
    """The memory estimate (``planning.memory``) of one training process on an instance type."""

    device: Literal["cpu", "cuda", "neuron"]
    processes: int = Field(description="training processes of the job (one per GPU or NeuronCore)")
    bf16: bool
    capacity_bytes: int = Field(description="memory one process may use: a GPU's, a NeuronCore's, or the host's")
    budget_bytes: int
    requested_bytes: int = Field(description="the estimate at the spec's own settings")
    parts: dict[str, int] = Field(description="the requested estimate by what holds it")
    fits: bool = Field(description="with the adjustments the run makes itself (micro-batch, checkpointing)")
    fitted_bytes: int
    adjustments: dict[str, int | bool] = Field(default_factory=dict, description="setting -> value the run takes")
    change: str | None = Field(None, description="what would make this type fit, when it does not")


class PlannedTime(Contract):
    flops_per_token: float = Field(description="training FLOPs per token at the settings the run takes")
    throughput_low: float = Field(description="FLOP/s of the whole job, low end")
    throughput_high: float
    throughput_source: str
    throughput_measured: bool = Field(description="False: the device's rate is assumed, not measured")
    training_seconds_low: float
    training_seconds_high: float
    process_start_seconds: float = Field(
        description="the training process before its first step: imports, model load, tokenizing and packing"
    )
    evaluation_seconds: float = Field(description="the evaluation job: loading, scoring and generating, both models")
    startup_seconds: float = Field(
        description="outside the processes: provisioning, image pull, downloads and the export's upload (0 locally)"
    )
    total_seconds_low: float
    total_seconds_high: float


class PlannedCost(Contract):
    region: str
    on_demand_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    training_usd_per_hour: float | None = Field(description="what the training job pays: spot or on demand, all nodes")
    training_usd_low: float | None = Field(description="the job as the spec runs it (spot or on-demand)")
    training_usd_high: float | None
    on_demand_usd_high: float | None = Field(description="the same job on demand, high end")
    evaluation_usd: float | None
    storage_usd: float
    total_usd_high: float | None
    price_source: str


class InstancePlan(Contract):
    instance_type: str
    requested: bool
    accelerator: str = Field(description="the accelerator's model, or the CPU")
    verdict: Literal["fits", "adjusted", "does_not_fit", "unknown"]
    memory: PlannedMemory | None = Field(None, description="None when config.json is not a shape the estimate knows")
    time: PlannedTime | None = None
    cost: PlannedCost | None = None


class DeployCheck(Contract):
    name: str
    ok: bool
    detail: str


class PlannedDeployment(Contract):
    target: Literal["sagemaker_endpoint", "bedrock_import", "local", "none"]
    ok: bool
    checks: list[DeployCheck] = Field(default_factory=list)
    engine: str | None = Field(None, description="what serves an endpoint: lmi or trainforge")
    instance_type: str | None = None
    needed_bytes: int | None = Field(None, description="merged model weights + KV cache at deploy.max_model_len")
    capacity_bytes: int | None = None
    alternatives: list[str] = Field(default_factory=list)


class QuotaHint(Contract):
    """A SageMaker quota the run needs (Service Quotas' name), and its value where it could be read."""

    name: str
    needed: int
    code: str | None = None
    value: float | None = None
    status: Literal["ok", "too_low", "unknown"] = "unknown"


class Plan(Contract):
    """plan.json: the run's time, cost, memory and deployability, decided before any SageMaker call."""

    run_id: str | None = None
    job_name: str
    base_model: str
    method: str
    region: str
    work: PlannedWork
    instances: list[InstancePlan] = Field(description="the requested type first, then the others compared")
    smallest_fitting: str | None = Field(None, description="the cheapest type (else least memory) that fits")
    trainium_vs_gpu: str | None = None
    deployment: PlannedDeployment
    quotas: list[QuotaHint] = Field(default_factory=list)
    refusals: list[str] = Field(default_factory=list, description="why the pipeline refuses the run; empty: it runs")
    notes: list[str] = Field(default_factory=list)
    prices_as_of: str
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def requested(self) -> InstancePlan:
        return next(option for option in self.instances if option.requested)


class PlannedActual(Contract):
    """One figure of a run as planned and as it happened (run summary, evaluation report)."""

    figure: Literal["training time", "tokens", "cost"]
    planned: str
    actual: str


class RunSummary(Contract):
    """outcome.json: how a run ended, written last in both modes."""

    run_id: str
    status: Literal["succeeded", "rejected", "failed"]
    steps: list[str] = Field(default_factory=list, description="the state machine's Task states passed")
    wall_seconds: float | None = None
    gate: GateVerdict | None = None
    metrics: list[MetricComparison] = Field(default_factory=list)
    forgetting: MetricComparison | None = None
    model_version: ModelVersion | None = None
    deployment: Deployment | None = None
    failure: RunFailure | None = None
    planned: list[PlannedActual] = Field(default_factory=list, description="plan.json's figures beside the run's")

    def message(self, run_root: str) -> str:
        """What the run-outcome notification says."""
        parts = [f"Run {self.run_id} {self.status}."]
        if self.model_version is not None:
            parts.append(
                f"Model {self.model_version.name} version {self.model_version.version} is "
                f"{self.model_version.approval}."
            )
        if self.gate is not None:
            parts.append("Gate: " + "; ".join(self.gate.reasons) + ".")
        if self.deployment is not None:
            where = self.deployment.endpoint_name or self.deployment.model_arn or ""
            parts.append(f"Deployment: {self.deployment.target} {where} {self.deployment.status}.")
        if self.failure is not None:
            failure = self.failure
            parts.append(f"Failed at {failure.state}: {failure.error}: {failure.cause[:1000]}")
            if failure.report_uri:
                parts.append(f"Dataset report: {failure.report_uri}.")
            parts.append(f"Hint: {failure.hint}")
        parts.append(f"Outcome: {run_root}/outcome.json")
        return " ".join(parts)


# --- operating a deployed model --------------------------------------------------------------------------


class ParityToken(Contract):
    token: str
    logprob: float
    #: the log-probability margin of the chosen token over the runner-up: below the tolerance, numeric
    #: noise may legitimately pick the other
    margin: float


class ParityAnswer(Contract):
    """The evaluated model's greedy answer to one held-out prompt, token by token."""

    messages: list[dict[str, str]]
    text: str
    tokens: list[ParityToken]


class ParityReference(Contract):
    """What the deployed endpoint must reproduce before any traffic moves to it: written by the evaluation
    job beside its report (``evaluation/parity.json``), from the model exactly as it was evaluated."""

    run_id: str
    max_new_tokens: int
    answers: list[ParityAnswer]


class Estimate(Contract):
    """One figure of one variant with its 95% bootstrap (or Wilson, for rates) interval."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int = Field(description="examples, answers or requests it rests on")
    higher_is_better: bool


class VariantEvaluation(Contract):
    variant: str
    version: str
    role: Literal["champion", "challenger"]
    metrics: list[Estimate]


class ContinuousEvaluationReport(Contract):
    """A deployed endpoint's versions re-scored on the newest validated data and on captured traffic, with
    their serving figures; written by the continuous evaluation job (``evaluation/continuous.py``)."""

    endpoint: str
    created_at: datetime = Field(default_factory=utcnow)
    variants: list[VariantEvaluation]
    #: the challenger against the champion (base = champion, tuned = challenger; delta positive is better)
    comparisons: list[MetricComparison] = Field(default_factory=list)
    #: failed when the challenger is worse beyond its interval on a quality figure; None without one
    verdict: GateVerdict | None = None
    report_uri: str | None = None


def objective_label(trials: list[TrialSummary]) -> str:
    """What the trials' objective column holds, for the report and ``trainforge runs show``."""
    metric = trials[0].metric if trials else "eval_loss"
    return "1 - exact match on the selection slice" if metric == "exact_match" else "best eval loss"
