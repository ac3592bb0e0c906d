"""What each Lambda function does, as functions of the state machine's JSON. The handlers in
``functions/`` only parse, call one of these and return; everything here is testable without Lambda.

Each state's input is parsed into a typed event first, so a producer and a consumer that drift apart fail
at the boundary with the field that is wrong, not three calls later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Generic, Literal, TypeVar

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from trainforge.aws.sagemaker_requests import (
    AwsResources,
    create_processing_job,
    create_training_job,
    serving_container,
    serving_engine,
)
from trainforge.contracts import (
    DatasetReport,
    Deployment,
    EvaluationReport,
    ModelVersion,
    PlannedActual,
    RunRequest,
    RunSummary,
    TrainingRequest,
    TrainingResult,
    utcnow,
)
from trainforge.data.fingerprint import content_fingerprint
from trainforge.errors import EvaluationFailed, TrainForgeError, TrainingFailed
from trainforge.instances import instance_type
from trainforge.pipeline import steps
from trainforge.pipeline.admission import admit, dataset_refs, load_run, record_admission, resolve_data_uri
from trainforge.pipeline.keys import classify_key
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.pipeline.planned import planned_vs_actual_at
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.schedules import debounce_new_data, job_spec_uri
from trainforge.settings import Settings
from trainforge.spec import JobSpec, parse_spec
from trainforge.store import join, open_store, pin_version
from trainforge.tuning.amt import finish_tuning, prepared_tuning, tuning_job_name
from trainforge.tuning.objective import MODEL_STEP
from trainforge.tuning.refit import refit_request

#: CloudWatch log groups SageMaker writes job logs to
LOG_GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs"}


def aws_platform(settings: Settings) -> Platform:
    return dataclasses.replace(Platform.from_settings(settings, local=False), region=_region())


def _region() -> str:
    return os.environ.get("AWS_REGION") or boto3.session.Session().region_name or "us-east-1"


def aws_resources(settings: Settings) -> AwsResources:
    return AwsResources.from_settings(settings, _region())


# --- the state machine's payload, typed ------------------------------------------------------------------


class _State(BaseModel):
    """A state's input: what the state machine has gathered so far (later fields are ignored here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


T = TypeVar("T")


class _Value(BaseModel, Generic[T]):
    """A Lambda task's result as the state machine keeps it (``ResultSelector: {"value.$": "$.Payload"}``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    value: T


class StepError(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    Error: str = "Unknown"
    Cause: str = ""


class JobRef(BaseModel):
    """A SageMaker job as a .sync task's ResultSelector keeps it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    arn: str
    #: the Tune state's result: ``name`` is the tuning job, its best training job is the run's
    tuning: bool = False


class RunEvent(_State):
    run: RunRequest


class PrepareEvent(RunEvent):
    dataset: DatasetReport


class PrepareEvaluationEvent(RunEvent):
    training: TrainingRequest
    job: JobRef


class PrepareRefitEvent(RunEvent):
    #: the Tune state's result
    job: JobRef
    #: Prepare's answer, which the refit's answer replaces (the Train state reads it)
    prepared: dict[str, Any]


class RegisterEvent(RunEvent):
    dataset: DatasetReport
    training: TrainingResult
    evaluation: EvaluationReport


class DeployEvent(RunEvent):
    version: ModelVersion


class Prepared(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    training: TrainingRequest


class Evaluating(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    result: TrainingResult


class ReadResult(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    evaluation: EvaluationReport


class Registered(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: ModelVersion


class PipelineState(RunEvent):
    """Everything a run may have reached, for the states that close it (outcome, failure)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    #: PlanValidation's answer (the map's manifest)
    validation: dict[str, Any] | None = None
    dataset: _Value[DatasetReport] | None = None
    #: Plan's answer (where plan.json is, the requested type's verdict)
    planned: _Value[dict[str, Any]] | None = None
    prepared: _Value[Prepared] | None = None
    trained: JobRef | None = None
    evaluating: _Value[Evaluating] | None = None
    evaluated: JobRef | None = None
    result: _Value[ReadResult] | None = None
    registered: _Value[Registered] | None = None
    deployment: _Value[Deployment] | None = None
    endpoint: dict[str, Any] | None = None
    #: GetModelImportJob's answer (the state machine keeps it as ``$.import``); aws-sdk integrations name
    #: fields in PascalCase whatever the API's own case (Status, ImportedModelArn)
    imported: dict[str, Any] | None = Field(None, alias="import")
    error: StepError | None = None
    failed_state: str = "unknown"

    def passed(self) -> list[str]:
        """The Task states the run went through, from what it gathered (the local runner lists its own)."""
        reached = {
            "PlanValidation": self.validation,
            "MergeValidation": self.dataset,
            "Plan": self.planned,
            "Prepare": self.prepared,
            "Train": self.trained,
            "PrepareEvaluation": self.evaluating,
            "Evaluate": self.evaluated,
            "ReadEvaluation": self.result,
            "Register": self.registered,
            "Deploy": self.deployment,
        }
        return [name for name, value in reached.items() if value is not None]

    def final_deployment(self) -> Deployment | None:
        """The deployment as the wait loop last saw it."""
        if self.deployment is None:
            return None
        deployment = self.deployment.value
        if self.endpoint is not None:
            return deployment.model_copy(update={"status": str(self.endpoint.get("EndpointStatus", deployment.status))})
        if self.imported is not None:
            return deployment.model_copy(
                update={
                    "status": str(self.imported.get("Status", deployment.status)),
                    "model_arn": self.imported.get("ImportedModelArn") or deployment.model_arn,
                }
            )
        return deployment


def _summary(state: PipelineState, status: Literal["succeeded", "rejected", "failed"], **extra: Any) -> RunSummary:
    evaluation = state.result.value.evaluation if state.result else None
    return RunSummary(
        run_id=state.run.run_id,
        status=status,
        steps=state.passed(),
        wall_seconds=(utcnow() - state.run.created_at).total_seconds(),
        gate=evaluation.verdict if evaluation else None,
        metrics=evaluation.metrics if evaluation else [],
        forgetting=evaluation.forgetting if evaluation else None,
        model_version=state.registered.value.version if state.registered else None,
        deployment=state.final_deployment(),
        **extra,
    )


def _planned(state: PipelineState, settings: Settings) -> list[PlannedActual]:
    """plan.json's figures beside what training reported, once it has."""
    result = state.evaluating.value.result if state.evaluating else None
    return planned_vs_actual_at(settings.resolved_artifacts_uri(), state.run.run_id, result)


# --- admission --------------------------------------------------------------------------------------------


def start_run(request: RunRequest, spec: JobSpec, settings: Settings, client: Any = None) -> bool:
    """Record the run and start its execution, named by the run id; False when it already exists."""
    record_admission(request, spec, settings.resolved_artifacts_uri())
    client = client or boto3.client("stepfunctions")
    try:
        client.start_execution(
            stateMachineArn=settings.state_machine_arn,
            name=request.run_id,
            input=f'{{"run": {request.model_dump_json()}}}',
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return False
        raise
    return True


def _specs_reading(data_root: str, object_uri: str) -> list[JobSpec]:
    """The job specs with trigger.on_new_data whose data includes ``object_uri``."""
    store = open_store(join(data_root, "jobs"))
    found = []
    for info in store.list(join(data_root, "jobs") + "/"):
        try:
            spec = parse_spec(store.read_bytes(info.uri), info.uri)
        except TrainForgeError:
            continue  # an invalid spec has its own report from validate_upload
        targets = [resolve_data_uri(data_root, ref) for ref in (spec.data.train, spec.data.validation) if ref]
        if spec.trigger.on_new_data and any(object_uri.startswith(target) for target in targets):
            found.append(spec)
    return found


def handle_admit(
    bucket: str, raw_key: str, version_id: str | None, settings: Settings, client: Any = None
) -> dict[str, list[str]]:
    """An upload under jobs/ admits that spec. One under datasets/ moves the debounce schedule of each job
    that trains on it with trigger.on_new_data: one run starts once the upload has gone quiet."""
    uploaded = classify_key(raw_key)
    data_root = f"s3://{bucket}"
    result: dict[str, list[str]] = {"started": [], "duplicates": [], "scheduled": []}
    if uploaded.kind == "dataset":
        for spec in _specs_reading(data_root, join(data_root, uploaded.key)):
            debounce_new_data(spec.name, spec.trigger.quiet_minutes, settings)
            result["scheduled"].append(spec.name)
        return result
    spec_uri = join(data_root, uploaded.key)
    body = open_store(spec_uri).read_bytes(pin_version(spec_uri, version_id))
    request, spec = admit(spec_uri, body, version_id, data_root, settings.resolved_artifacts_uri(), "upload")
    result["started" if start_run(request, spec, settings, client) else "duplicates"].append(request.run_id)
    return result


def admit_once(
    bucket: str, raw_key: str, version_id: str | None, settings: Settings, context: Any, client: Any = None
) -> dict[str, list[str]]:
    """handle_admit behind Powertools idempotency on the runs table: EventBridge delivers at least once,
    and one object version must be admitted once (the execution name guards the rest). The Lambda context
    bounds the in-progress record by the invocation's remaining time, so a timed-out attempt does not block
    EventBridge's retries for the record's whole lifetime."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(table_name=settings.table_name, key_attr="pk", sort_key_attr="sk")
    config = IdempotencyConfig(expires_after_seconds=7 * 86400)
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="upload", persistence_store=persistence, config=config)
    def once(upload: dict[str, Any]) -> dict[str, list[str]]:
        return handle_admit(upload["bucket"], upload["key"], upload["version_id"], settings, client)

    return once(upload={"bucket": bucket, "key": raw_key, "version_id": version_id})


# --- the state machine's steps ----------------------------------------------------------------------------


def _run(event: RunEvent, settings: Settings) -> JobSpec:
    return load_run(settings.resolved_artifacts_uri(), event.run.run_id)[1]


def handle_prepare(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The training request and the CreateTrainingJob body the Train state sends unchanged."""
    parsed = PrepareEvent.model_validate(event)
    spec = _run(parsed, settings)
    training = steps.prepare_training(parsed.run, spec, parsed.dataset, aws_platform(settings))
    bound = training.max_wait_seconds if training.spot and training.max_wait_seconds else training.max_runtime_seconds
    job = create_training_job(training, aws_resources(settings))
    prepared = {
        "training": training.model_dump(mode="json"),
        "job": job,
        "timeout_seconds": steps.job_timeout_seconds(bound),
    }
    tuning = prepared_tuning(training, job, spec, settings.resolved_artifacts_uri(), steps.job_timeout_seconds(bound))
    return prepared if tuning is None else {**prepared, "tuning": tuning}  # the TrainOrTune choice reads it


def handle_prepare_refit(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """After the Tune state, with ``tuning.refit``: the tuning job's best feasible training job (its trials
    written for the report; InfeasibleStudy when none kept the budget), and Prepare's answer again with that
    trial's settings refit on the whole training side (``tuning.refit``), for the Train state to run.

    How long the trial's model trained is its container's ``tuning:model_step`` metric, in DescribeTrainingJob's
    FinalMetricDataList (the metric definitions' values the job emitted:
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html); the container
    prints it once, in its last line."""
    parsed = PrepareRefitEvent.model_validate(event)
    spec = _run(parsed, settings)
    platform = aws_platform(settings)
    client = client or boto3.client("sagemaker")
    trials_uri = RunLayout(platform.artifacts_uri, parsed.run.run_id).path("tune", "trials.json")
    best = finish_tuning(client, parsed.job.name, spec, platform.artifacts_uri, trials_uri)
    described = client.describe_training_job(TrainingJobName=best)
    model_step = next(
        (int(m["Value"]) for m in described.get("FinalMetricDataList", []) if m["MetricName"] == MODEL_STEP), None
    )
    training = TrainingRequest.model_validate(parsed.prepared["training"])
    refit = refit_request(training, described["HyperParameters"], model_step, spec, f"training job {best}")
    job = {**parsed.prepared["job"], "HyperParameters": refit.hyperparameters}
    return {**parsed.prepared, "training": refit.model_dump(mode="json"), "job": job}


def handle_prepare_evaluation(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """What training produced, as the training job reports it, and the evaluation job's request."""
    parsed = PrepareEvaluationEvent.model_validate(event)
    spec = _run(parsed, settings)
    platform = aws_platform(settings)
    client = client or boto3.client("sagemaker")
    job_name = parsed.job.name
    if parsed.job.tuning:  # the tuning job's best feasible training job is the run's (trainforge.tuning.amt)
        trials_uri = RunLayout(platform.artifacts_uri, parsed.run.run_id).path("tune", "trials.json")
        job_name = finish_tuning(client, parsed.job.name, spec, platform.artifacts_uri, trials_uri)
    described = client.describe_training_job(TrainingJobName=job_name)
    result = steps.training_result(
        parsed.run,
        described["ModelArtifacts"]["S3ModelArtifacts"],
        platform,
        training_job_name=job_name,
        billable_seconds=described.get("BillableTimeInSeconds"),
    )
    evaluation = steps.prepare_evaluation(parsed.run, spec, parsed.training, result, platform)
    return {
        "result": result.model_dump(mode="json"),
        "job": create_processing_job(evaluation, aws_resources(settings)),
        "timeout_seconds": steps.job_timeout_seconds(evaluation.max_runtime_seconds),
    }


def handle_read_evaluation(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    parsed = RunEvent.model_validate(event)
    evaluation = steps.read_evaluation(parsed.run, _run(parsed, settings), aws_platform(settings))
    return {
        "evaluation": evaluation.model_dump(mode="json"),
        "gate_passed": bool(evaluation.verdict and evaluation.verdict.passed),
    }


def model_container(model_uri: str, spec: JobSpec, settings: Settings) -> dict[str, Any]:
    """The container that serves this model on SageMaker: LMI where vLLM serves the architecture (or the
    spec asks for it), else this project's image."""
    config_uri = join(model_uri, "config.json")
    architectures = list(json.loads(open_store(config_uri).read_bytes(config_uri)).get("architectures") or [])
    return serving_container(
        model_uri,
        serving_engine(spec.deploy.engine, architectures),
        name=spec.name,
        max_model_len=spec.deploy.max_model_len,
        image_uri=settings.image_uri,
        region=_region(),
        native_bf16=instance_type(spec.deploy.instance_type).native_bf16,
    )


def handle_register(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    from trainforge.registry.sagemaker import SageMakerRegistry

    parsed = RegisterEvent.model_validate(event)
    spec = _run(parsed, settings)
    version = steps.register_model(
        parsed.run,
        spec,
        parsed.dataset,
        parsed.training,
        parsed.evaluation,
        aws_platform(settings),
        SageMakerRegistry(client),
        container=model_container(parsed.training.model_uri, spec, settings),
    )
    return {"version": version.model_dump(mode="json"), "deploy": steps.should_deploy(version, spec)}


def handle_deploy(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """Start the deployment; the state machine waits for InService (endpoint) or Completed (import). An
    endpoint's new version is only staged here, with no traffic: CheckParity releases it
    (``pipeline.endpoint_handlers``)."""
    from trainforge.pipeline.endpoint_handlers import stage_on_endpoint
    from trainforge.serving.deployers.bedrock import BedrockDeployer

    parsed = DeployEvent.model_validate(event)
    spec = _run(parsed, settings)
    if spec.deploy.target == "local":  # a local-mode spec uploaded to AWS: register, but start nothing
        return Deployment(
            run_id=parsed.run.run_id, target="local", status="Skipped: deploy.target local applies to local mode"
        ).model_dump(mode="json")
    if spec.deploy.target == "bedrock_import":
        return BedrockDeployer(aws_resources(settings), client).deploy(parsed.version).model_dump(mode="json")
    return stage_on_endpoint(parsed, spec, settings, client)


def handle_record_outcome(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """outcome.json for a run that succeeded or that the gate rejected; the notification's message."""
    status = event["status"]
    state = PipelineState.model_validate(event["state"])
    summary = _summary(state, status, planned=_planned(state, settings))
    message = steps.record_outcome(summary, aws_platform(settings))
    return {"status": status, "message": message}


# --- failures ---------------------------------------------------------------------------------------------


#: the name field of a job's Describe* output -> its status field and the kind of job
_JOB_FIELDS = {
    "TrainingJobName": ("TrainingJobStatus", "training"),
    "ProcessingJobName": ("ProcessingJobStatus", "processing"),
    "HyperParameterTuningJobName": ("HyperParameterTuningJobStatus", "tuning"),
}


def _failed_job(error: StepError) -> dict[str, Any] | None:
    """A .sync task whose job ended Failed or Stopped fails with the job's Describe* output as its cause."""
    try:
        cause = json.loads(error.Cause)
    except json.JSONDecodeError:
        return None
    return cause if isinstance(cause, dict) and any(name in cause for name in _JOB_FIELDS) else None


def _telling_trial(tuning: dict[str, Any], client: Any) -> str | None:
    """The trial of a failed tuning job whose log says most: its best training job, else its latest one."""
    best = (tuning.get("BestTrainingJob") or {}).get("TrainingJobName")
    if best:
        return str(best)
    latest = client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"],
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["TrainingJobSummaries"]
    return str(latest[0]["TrainingJobName"]) if latest else None


def _stop_running_jobs(run_id: str, client: Any) -> list[str]:
    """Every training, processing or tuning job of the run still running: stopped, because it bills until it
    ends (a task timeout or a failed step elsewhere does not stop it). A tuning job's name is the run id cut
    to fit (``tuning_job_name``); stopping it stops its trials."""
    stopped = []
    for list_call, stop_call, key, name_key, contains in (
        ("list_training_jobs", "stop_training_job", "TrainingJobSummaries", "TrainingJobName", run_id),
        ("list_processing_jobs", "stop_processing_job", "ProcessingJobSummaries", "ProcessingJobName", run_id),
        (
            "list_hyper_parameter_tuning_jobs",
            "stop_hyper_parameter_tuning_job",
            "HyperParameterTuningJobSummaries",
            "HyperParameterTuningJobName",
            tuning_job_name(run_id),
        ),
    ):
        for page in client.get_paginator(list_call).paginate(NameContains=contains, StatusEquals="InProgress"):
            for job in page[key]:
                getattr(client, stop_call)(**{name_key: job[name_key]})
                stopped.append(job[name_key])
    return stopped


def _log_streams(job_names: dict[str, str], logs: Any) -> list[str]:
    """The CloudWatch log streams of the run's jobs (SageMaker names them JOB/algo-N-...)."""
    found = []
    for name, kind in job_names.items():
        group = LOG_GROUPS[kind]
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=name)["logStreams"]
        except ClientError:
            continue  # a job that never started has no log group yet
        found += [f"cloudwatch:{group}/{stream['logStreamName']}" for stream in streams]
    return found


def handle_record_failure(
    event: dict[str, Any], settings: Settings, client: Any = None, logs: Any = None
) -> dict[str, Any]:
    """The whole state comes in: whatever the failed run had reached is kept and pointed at; jobs still
    running are stopped; failure.json and outcome.json are written."""
    state = PipelineState.model_validate(event)
    error = state.error or StepError()
    client = client or boto3.client("sagemaker")
    cause = error.Cause
    jobs: dict[str, str] = {}
    if state.trained:
        jobs[state.trained.name] = "training"
    if state.evaluated:
        jobs[state.evaluated.name] = "processing"
    name_of_error = error.Error
    failed = _failed_job(error)
    if failed is not None:
        name_field = next(field for field in _JOB_FIELDS if field in failed)
        status_field, kind = _JOB_FIELDS[name_field]
        name = failed[name_field]
        reason = failed.get("FailureReason") or failed.get("ExitMessage") or "no FailureReason given"
        cause = f"{kind} job {name} ended {failed.get(status_field)}: {reason}"
        if kind != "tuning":
            jobs[name] = kind
        elif trial := _telling_trial(failed, client):  # a tuning job has no log of its own; its trials do
            jobs[trial] = "training"
        name_of_error = EvaluationFailed.__name__ if kind == "processing" else TrainingFailed.__name__
    elif name_of_error.startswith("States."):
        # the execution ends with this name, and Step Functions' own names (States.*) are not for Fail states
        cause = f"{name_of_error}: {cause}"
        name_of_error = "StepTimedOut" if name_of_error == "States.Timeout" else "StepFailed"
    stopped = _stop_running_jobs(state.run.run_id, client)
    failure = steps.record_failure(
        state.run.run_id,
        state.failed_state,
        name_of_error,
        cause,
        aws_platform(settings),
        _log_streams(jobs, logs or boto3.client("logs")),
        stopped,
    )
    summary = _summary(state, "failed", failure=failure, planned=_planned(state, settings))
    message = steps.record_outcome(summary, aws_platform(settings))
    return {**failure.model_dump(mode="json"), "summary": message}


# --- scheduled retraining ------------------------------------------------------------------------------------


def _sha256(uri: str) -> str:
    digest = hashlib.sha256()
    with open_store(uri).open(uri) as body:
        for block in iter(lambda: body.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def handle_retrain(job_name: str, settings: Settings, client: Any = None) -> dict[str, Any]:
    """Scheduled retraining: a run on the newest data, only if its content changed since the last success."""
    data_root = settings.resolved_data_uri()
    store = open_store(data_root)
    spec_uri = job_spec_uri(store, data_root, job_name)
    if spec_uri is None:
        return {"started": False, "reason": f"no job spec jobs/{job_name}.yaml"}
    info = store.head(spec_uri)
    spec = parse_spec(store.read_bytes(pin_version(spec_uri, info.version_id)), spec_uri)
    fingerprint = content_fingerprint(
        _sha256(pin_version(ref.uri, ref.version_id)) for ref in dataset_refs(spec, data_root)
    )
    latest = latest_success_uri(settings.resolved_artifacts_uri(), job_name)
    artifacts = open_store(latest)
    if artifacts.exists(latest) and json.loads(artifacts.read_bytes(latest)).get("fingerprint") == fingerprint:
        return {"started": False, "reason": "data unchanged since the last successful run"}
    request, spec = admit(
        spec_uri,
        store.read_bytes(pin_version(spec_uri, info.version_id)),
        info.version_id,
        data_root,
        settings.resolved_artifacts_uri(),
        "schedule",
    )
    started = start_run(request, spec, settings, client)
    return {
        "started": started,
        "run_id": request.run_id,
        "reason": "data changed" if started else "this run already exists",
    }
