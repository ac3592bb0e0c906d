"""The Lambda side of a SageMaker endpoint's rollout (``pipeline.rollout``): Deploy stages the new version,
CheckParity checks it and releases its traffic (or restores the endpoint and fails the run), and the
``rollout`` function promotes or rolls back on an operator's request (``trainforge promote|rollback
--aws PREFIX``).

Between Deploy and CheckParity, and after CheckParity, the state machine waits for the endpoint to be
InService: SageMaker refuses to update an endpoint that is still updating.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from trainforge.errors import UsageError
from trainforge.pipeline import rollout
from trainforge.pipeline.handlers import DeployEvent, _run, aws_resources, model_container
from trainforge.pipeline.parity import report_uri
from trainforge.serving.deployers.sagemaker import EndpointSettings, SageMakerDeployer
from trainforge.serving.rollout import config_name
from trainforge.settings import Settings
from trainforge.spec import JobSpec


def endpoint_deployer(
    settings: Settings, spec: JobSpec | None = None, client: Any = None, runtime: Any = None
) -> SageMakerDeployer:
    """The deployer of the stack's endpoints; with a spec, it can create the models of new versions and
    shift a canary the way the spec asks."""
    endpoint = EndpointSettings(
        aws=aws_resources(settings),
        artifacts_uri=settings.resolved_artifacts_uri(),
        alarm_prefix=settings.alarm_prefix,
    )
    if spec is None:
        return SageMakerDeployer(endpoint, None, client, runtime)
    endpoint = EndpointSettings(
        aws=endpoint.aws,
        artifacts_uri=endpoint.artifacts_uri,
        instance_type=spec.deploy.instance_type,
        alarm_prefix=endpoint.alarm_prefix,
        canary_percent=spec.deploy.rollout.canary_percent,
        wait_seconds=60 * spec.deploy.rollout.canary_wait_minutes,
    )
    return SageMakerDeployer(
        endpoint, lambda variant: model_container(variant.model_uri, spec, settings), client, runtime
    )


def stage_on_endpoint(event: DeployEvent, spec: JobSpec, settings: Settings, client: Any = None) -> dict[str, Any]:
    """Deploy: the version joins its endpoint with no traffic (a new endpoint: alone); returns while
    SageMaker is Creating or Updating."""
    deployer = endpoint_deployer(settings, spec, client)
    record, status = rollout.stage_version(event.version, spec, deployer, spec.deploy.instance_type)
    return rollout.deployment(record, event.run.run_id, "sagemaker_endpoint", status, arn=event.version.arn).model_dump(
        mode="json"
    )


def handle_check_parity(
    event: dict[str, Any], settings: Settings, client: Any = None, runtime: Any = None
) -> dict[str, Any]:
    """CheckParity: the staged version answers its evaluation's reference prompts by variant name; on a
    match its traffic is released under the spec's policy and the registry follows, else the endpoint is
    restored, the version Rejected, and the run fails with ParityFailed. Returns the released deployment
    (what the state machine keeps as ``$.deployment.value``, waiting for InService unless it already is)
    and where the parity report is."""
    parsed = DeployEvent.model_validate(event)
    spec = _run(parsed, settings)
    deployer = endpoint_deployer(settings, spec, client, runtime)
    record = deployer.current(spec.name)
    artifacts = settings.resolved_artifacts_uri()
    served = [v for v in (record.champion, record.challenger) if v] if record is not None else []
    if record is not None and record.staged is None and parsed.version.version in {v.version for v in served}:
        # a retried CheckParity (the state machine retries a Lambda error) whose first attempt released it
        status = deployer.status(spec.name) or "InService"
        deployment = rollout.deployment(record, parsed.run.run_id, "sagemaker_endpoint", status, arn=parsed.version.arn)
        return {
            "deployment": deployment.model_dump(mode="json"),
            "parity_report": report_uri(artifacts, parsed.run.run_id),
        }
    if record is None or record.staged is None or record.staged.version != parsed.version.version:
        staged = record.staged.version if record and record.staged else "nothing"
        raise UsageError(f"endpoint {spec.name} has {staged} staged, not version {parsed.version.version}")
    report, uri = rollout.check_staged(record, deployer, artifacts, spec.deploy.rollout.parity_tolerance)
    aliases = rollout.SageMakerAliases(client)
    released, status = rollout.after_parity(record, spec.deploy.rollout, report, deployer, aliases, uri)
    deployment = rollout.deployment(released, parsed.run.run_id, "sagemaker_endpoint", status, arn=parsed.version.arn)
    if spec.deploy.rollout.policy == "canary":  # the state machine checks the endpoint ends on it
        deployment = deployment.model_copy(update={"endpoint_config": config_name(released)})
    return {"deployment": deployment.model_dump(mode="json"), "parity_report": uri}


class RolloutAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: str
    endpoint: str


def handle_rollout(event: dict[str, Any], settings: Settings, client: Any = None) -> dict[str, Any]:
    """``{"action": "promote" | "rollback", "endpoint": NAME}``, on an endpoint that is InService."""
    request = RolloutAction.model_validate(event)
    deployer = endpoint_deployer(settings, client=client)
    status = deployer.status(request.endpoint)
    if status != "InService":
        raise UsageError(
            f"endpoint {request.endpoint} is {status or 'not deployed'}; promote and rollback need it InService"
        )
    aliases = rollout.SageMakerAliases(client)
    if request.action == "promote":
        record, status = rollout.promote_endpoint(request.endpoint, deployer, aliases)
        return rollout.endpoint_summary(record, status)
    if request.action == "rollback":
        record, status, out = rollout.rollback_endpoint(request.endpoint, deployer, aliases)
        return rollout.endpoint_summary(record, status, out)
    raise UsageError(f"unknown rollout action '{request.action}': promote or rollback")
