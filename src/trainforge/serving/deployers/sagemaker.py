"""SageMakerDeployer: an endpoint record (``serving.rollout``) made real on SageMaker - a model per version,
an endpoint configuration per layout, the endpoint created or updated. The requests come from
``aws.sagemaker_requests`` (isolated, in the VPC, volume key only where the instance type takes one,
data capture to the artifacts bucket under the stack's key).

A change of weights between the variants the endpoint already runs moves traffic with
UpdateEndpointWeightsAndCapacities (seconds, no new instances) - or, for a ``canary``, through a blue/green
UpdateEndpoint whose guardrails shift a slice of the new fleet's capacity first and roll it back when an
alarm the deployer puts on the variant taking the traffic (5XX errors, model latency) goes off
(guardrails need unchanged variant names). Any other change is a new configuration through
a plain UpdateEndpoint (SageMaker brings the new fleet up before it retires the old). It returns while
SageMaker is still Creating or Updating: the state machine waits for InService and fails the run on
Failed. The record is saved under the artifacts root, ``deployments/NAME.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.aws.sagemaker_requests import (
    AwsResources,
    HostedVariant,
    create_endpoint_config,
    create_model,
    data_capture_config,
    deployment_config,
    rollback_alarms,
    update_endpoint_weights,
)
from trainforge.errors import DeploymentRefused
from trainforge.instances import instance_type
from trainforge.serving.rollout import EndpointRecord, Variant, config_name, load_record, same_variants, save_record
from trainforge.store import join


@dataclass(frozen=True)
class EndpointSettings:
    aws: AwsResources
    #: the artifacts root: records under deployments/, captures under capture/
    artifacts_uri: str
    instance_type: str = "ml.g5.xlarge"
    #: the stack's prefix of the alarms a canary creates on its variant ("": none, so nothing rolls it back)
    alarm_prefix: str = ""
    canary_percent: int = 10
    #: a canary's bake time, and how long an old fleet is kept after any blue/green switch
    wait_seconds: int = 300

    @property
    def capture_uri(self) -> str:
        return join(self.artifacts_uri, "capture")


def resource_name(name: str, version: str, run_id: str) -> str:
    """SageMaker names: <= 63 characters of letters, digits and '-'."""
    return f"{name}-v{version}-{run_id}"[:63].rstrip("-")


class SageMakerDeployer:
    def __init__(
        self,
        settings: EndpointSettings,
        container_for: Callable[[Variant], dict[str, Any]] | None = None,
        client: Any = None,
        runtime: Any = None,
        cloudwatch: Any = None,
    ) -> None:
        """``container_for``: the serving container of a version whose model does not exist yet (a new
        deployment); promote and rollback only ever use models that do."""
        self.settings = settings
        self.container_for = container_for
        self.client = client or boto3.client("sagemaker")
        self._runtime = runtime
        self._cloudwatch = cloudwatch

    def _exists(self, call: str, **name: str) -> bool:
        try:
            getattr(self.client, call)(**name)
        except ClientError:
            return False
        return True

    def _model(self, record: EndpointRecord, variant: Variant) -> str:
        name = resource_name(record.name, variant.version, variant.run_id)
        if not self._exists("describe_model", ModelName=name):
            if self.container_for is None:
                raise DeploymentRefused(f"the model {name} of {variant.name} no longer exists in SageMaker")
            self.client.create_model(**create_model(name, self.container_for(variant), self.settings.aws))
        return name

    def _canary_alarms(self, record: EndpointRecord) -> list[str]:
        """The rollback alarms of each variant a canary moves traffic to, created (or updated) now."""
        if not self.settings.alarm_prefix:
            return []
        cloudwatch = self._cloudwatch or boto3.client("cloudwatch")
        names = []
        for variant in record.production():
            if variant.weight > 0:
                for request in rollback_alarms(self.settings.alarm_prefix, record.name, variant.name):
                    cloudwatch.put_metric_alarm(**request)
                    names.append(request["AlarmName"])
        return names

    def current(self, name: str) -> EndpointRecord | None:
        return load_record(self.settings.artifacts_uri, name)

    def status(self, name: str) -> str | None:
        try:
            return str(self.client.describe_endpoint(EndpointName=name)["EndpointStatus"])
        except ClientError:
            return None

    def apply(self, record: EndpointRecord, before: EndpointRecord | None, *, canary: bool = False) -> str:
        s = self.settings
        name = record.name
        running = self.status(name) is not None
        if not record.variants:  # a first version that failed parity: nothing is left to serve
            if running:
                self.client.delete_endpoint(EndpointName=name)
            save_record(s.artifacts_uri, record)
            return "Deleted"
        if running and before is not None and before.layout_key() == record.layout_key():
            save_record(s.artifacts_uri, record)  # who is champion changed, not what serves
            return "InService"
        unchanged = running and same_variants(before, record)
        if unchanged and not canary and not record.shadows():
            weights = {v.name: v.weight for v in record.variants}
            self.client.update_endpoint_weights_and_capacities(**update_endpoint_weights(name, weights))
            save_record(s.artifacts_uri, record)
            return "Updating"
        hosted = [HostedVariant(v.name, self._model(record, v), v.weight, v.shadow) for v in record.variants]
        config = config_name(record)
        if not self._exists("describe_endpoint_config", EndpointConfigName=config):
            capture = (
                data_capture_config(s.capture_uri, record.capture_percent, s.aws) if record.capture_percent else None
            )
            instance = instance_type(record.instance_type or s.instance_type)
            request = create_endpoint_config(config, hosted, instance, record.instance_count, s.aws, capture)
            self.client.create_endpoint_config(**request)
        if running:
            update: dict[str, Any] = {"EndpointName": name, "EndpointConfigName": config}
            if unchanged:  # guardrails apply: the variant names are the old configuration's
                update["DeploymentConfig"] = deployment_config(
                    canary_percent=s.canary_percent if canary else None,
                    wait_seconds=s.wait_seconds,
                    rollback_alarms=self._canary_alarms(record) if canary else [],
                )
            self.client.update_endpoint(**update)
            status = "Updating"
        else:
            self.client.create_endpoint(EndpointName=name, EndpointConfigName=config)
            status = "Creating"
        save_record(s.artifacts_uri, record)
        return status

    def invoke(self, name: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
        runtime = self._runtime or boto3.client("sagemaker-runtime")
        answer = runtime.invoke_endpoint(
            EndpointName=name,
            TargetVariant=variant,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(body).encode(),
        )
        return dict(json.loads(answer["Body"].read()))

    def url(self, name: str) -> str | None:
        return None
