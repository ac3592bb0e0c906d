"""SageMakerDeployer: model + endpoint config + endpoint. An existing endpoint is updated blue/green: a
canary slice of capacity takes traffic first, and CloudWatch alarms roll the update back automatically.
The requests come from ``aws.sagemaker_requests`` (isolated, in the VPC, volume key only where the
instance type takes one). It returns while SageMaker is still Creating or Updating: the state machine
waits for InService and fails the run on Failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.aws.sagemaker_requests import AwsResources, create_endpoint_config, create_model
from trainforge.contracts import Deployment, ModelVersion
from trainforge.instances import instance_type


@dataclass(frozen=True)
class EndpointSettings:
    aws: AwsResources
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    #: alarms whose ALARM state rolls a blue/green update back
    rollback_alarms: list[str] = field(default_factory=list)
    canary_percent: int = 10
    wait_seconds: int = 300


def resource_name(name: str, version: str, run_id: str) -> str:
    """SageMaker names: <= 63 characters of letters, digits and '-'."""
    return f"{name}-v{version}-{run_id}"[:63].rstrip("-")


class SageMakerDeployer:
    def __init__(
        self,
        settings: EndpointSettings,
        container_for: Callable[[ModelVersion], dict[str, Any]],
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.container_for = container_for
        self.client = client or boto3.client("sagemaker")

    def _endpoint_exists(self, name: str) -> bool:
        try:
            self.client.describe_endpoint(EndpointName=name)
        except ClientError:
            return False
        return True

    def deploy(self, version: ModelVersion) -> Deployment:
        s = self.settings
        model_name = resource_name(version.name, version.version, version.run_id)
        self.client.create_model(**create_model(model_name, self.container_for(version), s.aws))
        self.client.create_endpoint_config(
            **create_endpoint_config(model_name, model_name, instance_type(s.instance_type), s.instance_count, s.aws)
        )
        if self._endpoint_exists(version.name):
            self.client.update_endpoint(
                EndpointName=version.name, EndpointConfigName=model_name, DeploymentConfig=self.blue_green()
            )
            status = "Updating"
        else:
            self.client.create_endpoint(EndpointName=version.name, EndpointConfigName=model_name)
            status = "Creating"
        return Deployment(
            run_id=version.run_id,
            target="sagemaker_endpoint",
            endpoint_name=version.name,
            model_arn=version.arn,
            traffic={version.version: 100},
            status=status,
        )

    def blue_green(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": s.canary_percent},
                    "WaitIntervalInSeconds": s.wait_seconds,
                },
                "TerminationWaitInSeconds": s.wait_seconds,
                "MaximumExecutionTimeoutInSeconds": max(600, 6 * s.wait_seconds),
            },
        }
        if s.rollback_alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in s.rollback_alarms]}
        return config
