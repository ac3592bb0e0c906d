"""What each Lambda function does, as functions of the state machine's JSON. The handlers in
``functions/`` only parse, call one of these and return; everything here is testable without Lambda."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.contracts import (
    DatasetReport,
    Deployment,
    EvaluationReport,
    ModelVersion,
    RunRequest,
    TrainingResult,
    VpcConfig,
)
from trainforge.data.fingerprint import content_fingerprint
from trainforge.errors import TrainForgeError
from trainforge.pipeline import steps
from trainforge.pipeline.admission import admit, dataset_refs, load_run, record_admission, resolve_data_uri
from trainforge.pipeline.keys import classify_key
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.pipeline.platform import Platform
from trainforge.settings import Settings
from trainforge.spec import JobSpec, parse_spec
from trainforge.store import join, open_store, pin_version


def aws_platform(settings: Settings) -> Platform:
    return Platform.from_settings(settings, local=False, image_uri=settings.image_uri)


def _vpc(settings: Settings) -> VpcConfig | None:
    if not settings.subnet_ids:
        return None
    return VpcConfig(subnets=settings.subnet_ids.split(","), security_group_ids=settings.security_group_ids.split(","))


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


def _specs_reading(data_root: str, object_uri: str) -> list[tuple[str, str | None]]:
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
            found.append((info.uri, store.head(info.uri).version_id))
    return found


def handle_admit(
    bucket: str, raw_key: str, version_id: str | None, settings: Settings, client: Any = None
) -> dict[str, list[str]]:
    """An upload under jobs/ admits that spec; one under datasets/ admits the jobs that train on it."""
    uploaded = classify_key(raw_key)
    data_root = f"s3://{bucket}"
    if uploaded.kind == "job":
        specs = [(join(data_root, uploaded.key), version_id)]
    else:
        specs = _specs_reading(data_root, join(data_root, uploaded.key))
    result: dict[str, list[str]] = {"started": [], "duplicates": []}
    for spec_uri, spec_version in specs:
        body = open_store(spec_uri).read_bytes(pin_version(spec_uri, spec_version))
        request, spec = admit(spec_uri, body, spec_version, data_root, settings.resolved_artifacts_uri(), "upload")
        result["started" if start_run(request, spec, settings, client) else "duplicates"].append(request.run_id)
    return result


def admit_once(
    bucket: str, raw_key: str, version_id: str | None, settings: Settings, client: Any = None
) -> dict[str, list[str]]:
    """handle_admit behind Powertools idempotency on the runs table: EventBridge delivers at least once,
    and one object version must be admitted once (the execution name guards the rest)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(table_name=settings.table_name, key_attr="pk", sort_key_attr="sk")

    @idempotent_function(
        data_keyword_argument="upload",
        persistence_store=persistence,
        config=IdempotencyConfig(expires_after_seconds=7 * 86400),
    )
    def once(upload: dict[str, Any]) -> dict[str, list[str]]:
        return handle_admit(upload["bucket"], upload["key"], upload["version_id"], settings, client)

    return once(upload={"bucket": bucket, "key": raw_key, "version_id": version_id})


def handle_validate(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    request = RunRequest.model_validate(event["run"])
    _, spec = load_run(settings.resolved_artifacts_uri(), request.run_id)
    return steps.validate_run(request, spec, aws_platform(settings)).model_dump(mode="json")


def handle_prepare(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    request = RunRequest.model_validate(event["run"])
    _, spec = load_run(settings.resolved_artifacts_uri(), request.run_id)
    training = steps.prepare_training(
        request, spec, DatasetReport.model_validate(event["dataset"]), aws_platform(settings)
    )
    layout = RunLayout(settings.resolved_artifacts_uri(), request.run_id)
    evaluation_data = training.channels.get("validation", training.channels["train"])
    return {
        "request": training.model_dump(mode="json"),
        "evaluation_data_uri": evaluation_data,
        "evaluation_config_uri": join(layout.evaluation, "config") + "/",
        "evaluation_output_uri": layout.evaluation + "/",
        "deploy_target": spec.deploy.target,
    }


def handle_read_evaluation(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    request = RunRequest.model_validate(event["run"])
    _, spec = load_run(settings.resolved_artifacts_uri(), request.run_id)
    platform = aws_platform(settings)
    training = steps.training_result(request, event["model_uri"], platform)
    evaluation = steps.read_evaluation(request, spec, platform)
    passed = bool(evaluation.verdict and evaluation.verdict.passed)
    return {
        "training": training.model_dump(mode="json"),
        "evaluation": evaluation.model_dump(mode="json"),
        "gate_passed": passed,
    }


def handle_register(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    from trainforge.registry.sagemaker import SageMakerRegistry

    request = RunRequest.model_validate(event["run"])
    _, spec = load_run(settings.resolved_artifacts_uri(), request.run_id)
    version = steps.register_model(
        request,
        spec,
        DatasetReport.model_validate(event["dataset"]),
        TrainingResult.model_validate(event["training"]),
        EvaluationReport.model_validate(event["evaluation"]),
        aws_platform(settings),
        SageMakerRegistry(settings.image_uri, client),
    )
    return version.model_dump(mode="json")


def handle_deploy(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    from trainforge.serving.deployers.bedrock import BedrockDeployer, ImportSettings
    from trainforge.serving.deployers.sagemaker import EndpointSettings, SageMakerDeployer

    request = RunRequest.model_validate(event["run"])
    _, spec = load_run(settings.resolved_artifacts_uri(), request.run_id)
    vpc = _vpc(settings)
    deployer: Any
    if spec.deploy.target == "local":  # a local-mode spec uploaded to AWS: register, but start nothing
        return Deployment(
            run_id=request.run_id, target="local", status="Skipped: deploy.target local applies to local mode"
        ).model_dump(mode="json")
    if spec.deploy.target == "bedrock_import":
        deployer = BedrockDeployer(
            ImportSettings(role_arn=settings.bedrock_role_arn, kms_key_id=settings.kms_key_arn or None, vpc=vpc), client
        )
    else:
        alarms = [a for a in settings.rollback_alarms.split(",") if a]
        deployer = SageMakerDeployer(
            EndpointSettings(
                role_arn=settings.sagemaker_role_arn,
                image_uri=settings.image_uri,
                instance_type=spec.deploy.instance_type,
                kms_key_id=settings.kms_key_arn or None,
                vpc=vpc,
                rollback_alarms=alarms,
            ),
            client,
        )
    return steps.deploy_model(ModelVersion.model_validate(event["version"]), spec, deployer).model_dump(mode="json")


def handle_record_failure(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """The whole state comes in: whatever the failed run had reached is kept and pointed at."""
    run_id = event["run"]["run_id"]
    error = event.get("error") or {}
    cause = str(error.get("Cause", ""))
    logs = []
    job = (event.get("training") or {}).get("job") or {}
    if job.get("name"):
        logs.append(f"cloudwatch:/aws/sagemaker/TrainingJobs/{job['name']}")
        if error.get("Error") == "TrainingFailed":
            try:
                described = (client or boto3.client("sagemaker")).describe_training_job(TrainingJobName=job["name"])
                cause = f"{cause}: {described.get('FailureReason', 'no FailureReason given')}"
            except ClientError:
                pass
    failure = steps.record_failure(
        run_id,
        str(event.get("failed_state", "unknown")),
        str(error.get("Error", "Unknown")),
        cause,
        aws_platform(settings),
        logs,
    )
    return failure.model_dump(mode="json")


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
    candidates = [join(data_root, "jobs", f"{job_name}.{ext}") for ext in ("yaml", "yml", "json")]
    spec_uri = next((uri for uri in candidates if store.exists(uri)), None)
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
