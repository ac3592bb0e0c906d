"""Continuous evaluation of a SageMaker endpoint: the AWS side of ``pipeline.continuous``, in two steps.

``continuous_evaluation`` (invoked by the spec's ``deploy.continuous_evaluation`` schedule with
``{"endpoint": NAME}``) gathers what the job scores - the endpoint record's champion and challenger, the
newest validated data, the captured exchanges under ``capture/NAME/`` since the previous evaluation, each
variant's CloudWatch figures over the same window - writes the job's input files under
``deployments/NAME/evaluations/STAMP/input/`` and starts the job as a SageMaker processing job named
``NAME-STAMP-ce``. The models and the data are read by the job where they are; nothing is copied.

``record_continuous_evaluation`` runs on the job's end: an EventBridge rule on SageMaker's "Processing Job
State Change" events for names ending in ``-ce``. It records the outcome beside the inputs
(``evaluation.json``), each scored version's figures in its model package's metadata, and, when the
challenger failed and the spec asked for it, rolls it back (``pipeline.rollout``). A rule rather than a
``.sync`` state machine: the job may run for hours, the two steps share nothing but the evaluation's folder,
and a rule is one resource where a state machine is a definition, a role and its own failure handling.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from pydantic import BaseModel, ConfigDict

from trainforge.aws.sagemaker_requests import (
    create_continuous_evaluation_job,
    placement,
    update_model_package_evaluation,
    volume_size_gb,
)
from trainforge.contracts import ContinuousEvaluationReport, EvaluationRequest
from trainforge.errors import UsageError
from trainforge.instances import instance_type
from trainforge.pipeline import rollout
from trainforge.pipeline.continuous import (
    captured_lines,
    captures_uri,
    cloudwatch_requests,
    cloudwatch_series,
    completion_tokens,
    job_files,
    newest_data_source,
    references,
    roles,
)
from trainforge.pipeline.endpoint_handlers import endpoint_deployer
from trainforge.pipeline.handlers import aws_platform, aws_resources
from trainforge.pipeline.schedules import job_spec_uri
from trainforge.pipeline.steps import evaluation_instance, weights_footprint
from trainforge.serving.capture import read_captures
from trainforge.serving.rollout import load_record
from trainforge.settings import Settings
from trainforge.spec import JobSpec, parse_spec
from trainforge.store import join, open_store

#: the suffix of the job's name that the stack's rule matches
JOB_SUFFIX = "-ce"
STAMP = "%Y%m%dT%H%M%S"
#: the longest window a run looks back over: CloudWatch keeps 1-minute data for 15 days
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#metrics-retention)
MAX_WINDOW = timedelta(days=14)


class StartEvaluation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoint: str


def evaluations_uri(artifacts_uri: str, endpoint: str) -> str:
    return join(artifacts_uri, "deployments", endpoint, "evaluations")


def window_start(artifacts_uri: str, endpoint: str, now: datetime) -> datetime:
    """Since the previous evaluation started (each run scores the traffic that is new to it), at most
    MAX_WINDOW back."""
    folder = evaluations_uri(artifacts_uri, endpoint) + "/"
    stamps = {info.uri[len(folder) :].split("/", 1)[0] for info in open_store(folder).list(folder)}
    earlier = [datetime.strptime(s, STAMP).replace(tzinfo=UTC) for s in stamps if len(s) == 15]
    previous = max((s for s in earlier if s < now), default=None)
    return max(previous or now - MAX_WINDOW, now - MAX_WINDOW)


def current_spec(settings: Settings, endpoint: str) -> JobSpec:
    data_root = settings.resolved_data_uri()
    store = open_store(join(data_root, "jobs"))
    uri = job_spec_uri(store, data_root, endpoint)
    if uri is None:
        raise UsageError(f"no job spec jobs/{endpoint}.yaml: continuous evaluation follows the job's spec")
    return parse_spec(store.read_bytes(uri), uri)


def handle_start(
    event: dict[str, Any],
    settings: Settings,
    sagemaker: Any = None,
    cloudwatch: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the job's inputs and start it; returns where its evaluation lands and what it was given."""
    name = StartEvaluation.model_validate(event).endpoint
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    artifacts = settings.resolved_artifacts_uri()
    record = load_record(artifacts, name)
    if record is None:
        raise UsageError(f"no endpoint named {name} has been deployed (deployments/{name}.json)")
    spec = current_spec(settings, name)
    scored = roles(record)
    since = window_start(artifacts, name, now)
    folder = join(evaluations_uri(artifacts, name), now.strftime(STAMP))

    channel, data = newest_data_source(artifacts, name)
    with tempfile.TemporaryDirectory() as tmp:
        if channel is not None:
            store = open_store(channel)
            for info in store.list(channel):
                (Path(tmp) / info.uri.rsplit("/", 1)[-1]).write_bytes(store.read_bytes(info.uri))
        known = references(Path(tmp), data["data_format"] or "")
    captures = captures_uri(name, artifacts_uri=artifacts)
    exchanges = list(read_captures(open_store(captures), captures, since))
    series = cloudwatch_series(cloudwatch or boto3.client("cloudwatch"), name, [v.name for v, _ in scored], since, now)
    requests = cloudwatch_requests(series, completion_tokens(exchanges))
    lines = captured_lines(exchanges, known)
    files = job_files(
        record,
        data,
        lines,
        requests,
        max_examples=spec.evaluation.max_examples,
        max_new_tokens=spec.evaluation.max_new_tokens,
    )
    store = open_store(folder)
    for relative, text in files.items():
        store.write_bytes(join(folder, "input", relative), text.encode())

    job_name = f"{name}-{now.strftime(STAMP)}{JOB_SUFFIX}"
    request = {
        "endpoint": name,
        "processing_job": job_name,
        "since": since.isoformat(),
        "until": now.isoformat(),
        "rollback_on_fail": bool(
            spec.deploy.continuous_evaluation and spec.deploy.continuous_evaluation.rollback_on_fail
        ),
        "packages": {v.name: v.arn for v, _ in scored},
    }
    store.write_bytes(join(folder, "request.json"), json.dumps(request, indent=2).encode(), "application/json")

    inputs = {part: join(folder, "input", part) + "/" for part in ("config", "captured", "ops")}
    if channel is not None:
        inputs["data"] = channel
    inputs |= {f"model-{v.name}": v.model_uri.rstrip("/") + "/" for v, _ in scored}
    platform = aws_platform(settings)
    champion_uri = scored[0][0].model_uri
    instance = instance_type(evaluation_instance(spec, champion_uri))
    placed = placement(instance, platform.image_uri, platform.neuron_image_uri)
    job = EvaluationRequest(
        run_id=name,
        processing_job_name=job_name,
        image=placed.image,
        instance_type=instance.name,
        inputs=inputs,
        output_uri=join(folder, "output") + "/",
        environment=placed.environment,
        max_runtime_seconds=int(spec.evaluation.max_runtime_hours * 3600),
        volume_size_gb=volume_size_gb(instance, len(scored) * weights_footprint(champion_uri)[0]),
    )
    (sagemaker or boto3.client("sagemaker")).create_processing_job(
        **create_continuous_evaluation_job(job, aws_resources(settings))
    )
    return {
        "endpoint": name,
        "processing_job": job_name,
        "evaluation_uri": folder,
        "captured": len(lines),
        "with_reference": sum(line["reference"] is not None for line in lines),
        "requests": {variant: len(rows) for variant, rows in requests.items()},
    }


# --- the job's end --------------------------------------------------------------------------------------


def package_metadata(report: ContinuousEvaluationReport, variant: str, folder: str) -> dict[str, str]:
    """What a model package keeps of its latest evaluation: where it is, the verdict, each figure with its
    95% interval."""
    scored = next(v for v in report.variants if v.variant == variant)
    verdict = "none" if report.verdict is None else ("passed" if report.verdict.passed else "failed")
    figures = {
        f"trainforge:evaluation:{e.name}": f"{e.value:.6g} [{e.ci_low:.6g}, {e.ci_high:.6g}] n={e.n}"
        for e in scored.metrics
    }
    return {
        "trainforge:evaluation:uri": folder,
        "trainforge:evaluation:at": f"{report.created_at:%Y-%m-%dT%H:%M:%SZ}",
        "trainforge:evaluation:verdict": verdict,
        **figures,
    }


def record_in_registry(
    report: ContinuousEvaluationReport, packages: dict[str, str | None], folder: str, client: Any
) -> None:
    for variant in report.variants:
        arn = packages.get(variant.variant)
        if arn is None:
            continue
        package = client.describe_model_package(ModelPackageName=arn)
        metadata = dict(package.get("CustomerMetadataProperties") or {})
        client.update_model_package(
            **update_model_package_evaluation(
                arn, metadata, package_metadata(report, variant.variant, folder), package["ModelApprovalStatus"]
            )
        )


def roll_back_failed(report: ContinuousEvaluationReport, settings: Settings, client: Any) -> tuple[str | None, str]:
    """Roll the challenger back if it is still the one the report judged and the endpoint can be updated;
    returns the variant rolled back (or None) and why."""
    challenger = next((v for v in report.variants if v.role == "challenger"), None)
    deployer = endpoint_deployer(settings, client=client)
    record = deployer.current(report.endpoint)
    if challenger is None or record is None or record.challenger is None:
        return None, "the endpoint has no challenger any more"
    if record.challenger.name != challenger.variant:
        return None, f"the challenger is now {record.challenger.name}, not the {challenger.variant} evaluated"
    status = deployer.status(report.endpoint)
    if status != "InService":
        return None, f"endpoint {report.endpoint} is {status or 'not deployed'}; roll back with `trainforge rollback`"
    _, _, out = rollout.rollback_endpoint(report.endpoint, deployer, rollout.SageMakerAliases(client))
    return out.name, f"{out.name} was worse than the champion beyond its interval"


def handle_record(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """SageMaker's "Processing Job State Change" for a ``-ce`` job: record its outcome. A job whose report
    is not in this stack's artifacts bucket (another stack's, in the same account) is ignored."""
    client = client or boto3.client("sagemaker")
    detail = event["detail"]
    described = client.describe_processing_job(ProcessingJobName=detail["ProcessingJobName"])
    output = described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
    folder = output.removesuffix("/output")
    if not folder.startswith(join(settings.resolved_artifacts_uri(), "deployments") + "/"):
        return {"ignored": described["ProcessingJobName"], "reason": "not this stack's evaluation"}
    store = open_store(folder)
    request = json.loads(store.read_bytes(join(folder, "request.json")))
    outcome: dict[str, Any] = {"endpoint": request["endpoint"], "processing_job": described["ProcessingJobName"]}
    if described["ProcessingJobStatus"] != "Completed":
        outcome |= {"status": described["ProcessingJobStatus"], "reason": described.get("FailureReason", "")}
    else:
        report = ContinuousEvaluationReport.model_validate_json(store.read_bytes(join(output, "report.json")))
        record_in_registry(report, request["packages"], folder, client)
        passed = report.verdict is None or report.verdict.passed
        rolled_back, reason = (None, "not asked (deploy.continuous_evaluation.rollback_on_fail)")
        if passed:
            reason = "the verdict passed" if report.verdict else "no challenger"
        elif request["rollback_on_fail"]:
            rolled_back, reason = roll_back_failed(report, settings, client)
        outcome |= {
            "status": "Completed",
            "verdict": None if report.verdict is None else ("passed" if passed else "failed"),
            "reasons": report.verdict.reasons if report.verdict else [],
            "report_uri": join(output, "report.md"),
            "rolled_back": rolled_back,
            "rollback_reason": reason,
        }
    store.write_bytes(join(folder, "evaluation.json"), json.dumps(outcome, indent=2).encode(), "application/json")
    return outcome
