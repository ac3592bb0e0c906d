"""SageMakerDeployer: model + endpoint config + endpoint. An existing endpoint is updated blue/green: a
canary slice of capacity takes traffic first, and CloudWatch alarms roll the update back automatically.
Models run in the VPC with network isolation and a KMS-encrypted volume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.contracts import Deployment, ModelVersion, VpcConfig


@dataclass(frozen=True)
class EndpointSettings:
    role_arn: str
    image_uri: str
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    kms_key_id: str | None = None
    vpc: VpcConfig | None = None
    #: alarms whose ALARM state rolls a blue/green update back
    rollback_alarms: list[str] = field(default_factory=list)
    canary_percent: int = 10
    wait_seconds: int = 300


def resource_name(name: str, version: str, run_id: str) -> str:
    """SageMaker names: <= 63 characters of letters, digits and '-'."""
    return f"{name}-v{version}-{run_id}"[:63].rstrip("-")


class SageMakerDeployer:
    def __init__(self, settings: EndpointSettings, client: Any = None) -> None:
        self.settings = settings
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
        container = {
            "Image": s.image_uri,
            "ModelDataSource": {
                "S3DataSource": {
                    "S3Uri": version.model_uri.rstrip("/") + "/",
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            },
            "Environment": {"TRAINFORGE_MODEL_NAME": version.name, "HF_HUB_OFFLINE": "1"},
        }
        model_args: dict[str, Any] = {
            "ModelName": model_name,
            "PrimaryContainer": container,
            "ExecutionRoleArn": s.role_arn,
            "EnableNetworkIsolation": True,
        }
        if s.vpc:
            model_args["VpcConfig"] = {"Subnets": s.vpc.subnets, "SecurityGroupIds": s.vpc.security_group_ids}
        self.client.create_model(**model_args)
        config_args: dict[str, Any] = {
            "EndpointConfigName": model_name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model_name,
                    "InstanceType": s.instance_type,
                    "InitialInstanceCount": s.instance_count,
                }
            ],
        }
        if s.kms_key_id:
            config_args["KmsKeyId"] = s.kms_key_id
        self.client.create_endpoint_config(**config_args)
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
