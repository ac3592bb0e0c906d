"""SageMaker endpoint deployment (moto for create, Stubber for the blue/green update moto lacks) and
Bedrock Custom Model Import (Stubber: requests are checked against the real service model)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from trainforge.aws.sagemaker_requests import AwsResources
from trainforge.contracts import ModelVersion
from trainforge.errors import DeploymentRefused
from trainforge.serving.deployers.bedrock import BedrockDeployer
from trainforge.serving.deployers.sagemaker import EndpointSettings, SageMakerDeployer

ROLE = "arn:aws:iam::123456789012:role/trainforge-sagemaker"
BEDROCK_ROLE = "arn:aws:iam::123456789012:role/trainforge-bedrock-import"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge:latest"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
AWS = AwsResources(
    region="us-east-1",
    role_arn=ROLE,
    kms_key_arn=KMS,
    subnets=("subnet-a", "subnet-b"),
    security_group_ids=("sg-1",),
    bedrock_role_arn=BEDROCK_ROLE,
)


def version(n: str = "2") -> ModelVersion:
    return ModelVersion(
        run_id="abc123",
        registry="sagemaker",
        name="support",
        version=n,
        arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/support/" + n,
        approval="Approved",
        model_uri="s3://art/runs/abc123/model",
        bom_uri="s3://art/runs/abc123/bom.json",
    )


def container(v: ModelVersion) -> dict:
    return {
        "Image": IMAGE,
        "ModelDataSource": {
            "S3DataSource": {"S3Uri": v.model_uri + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
        },
    }


@pytest.mark.parametrize(("instance", "key"), [("ml.g4dn.xlarge", None), ("ml.m5.xlarge", KMS)])
@mock_aws
def test_first_deployment_creates_model_config_and_endpoint(aws_env, instance, key):
    """Given a first version, when deployed, then the model is isolated in the VPC and the endpoint config
    carries the volume key only for an EBS-only type (types with local NVMe refuse one)."""
    client = boto3.client("sagemaker")
    sent: dict = {}
    client.meta.events.register("provide-client-params.sagemaker.CreateModel", lambda params, **_: sent.update(params))
    settings = EndpointSettings(aws=AWS, instance_type=instance)
    deployment = SageMakerDeployer(settings, container, client).deploy(version("1"))
    assert (deployment.status, deployment.endpoint_name) == ("Creating", "support")
    assert sent["EnableNetworkIsolation"] is True and sent["VpcConfig"]["Subnets"] == ["subnet-a", "subnet-b"]
    assert client.describe_model(ModelName="support-v1-abc123")["PrimaryContainer"]["Image"] == IMAGE
    config = client.describe_endpoint_config(EndpointConfigName="support-v1-abc123")
    assert config.get("KmsKeyId") == key and config["ProductionVariants"][0]["ModelName"] == "support-v1-abc123"
    assert client.describe_endpoint(EndpointName="support")["EndpointConfigName"] == "support-v1-abc123"


def test_update_is_blue_green_with_alarm_rollback(aws_env):
    client = boto3.client("sagemaker")
    settings = EndpointSettings(
        aws=AWS, rollback_alarms=["support-5xx", "support-latency"], canary_percent=20, wait_seconds=120
    )
    with Stubber(client) as stub:
        stub.add_response(
            "create_model",
            {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/support-v2-abc123"},
            {
                "ModelName": "support-v2-abc123",
                "PrimaryContainer": ANY,
                "ExecutionRoleArn": ROLE,
                "EnableNetworkIsolation": True,
                "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-a", "subnet-b"]},
            },
        )
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/support-v2-abc123"},
            {"EndpointConfigName": "support-v2-abc123", "ProductionVariants": ANY},
        )
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "support",
                "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/support",
                "EndpointConfigName": "support-v1-abc123",
                "EndpointStatus": "InService",
                "CreationTime": "2026-11-01T00:00:00Z",
                "LastModifiedTime": "2026-11-01T00:00:00Z",
            },
            {"EndpointName": "support"},
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/support"},
            {
                "EndpointName": "support",
                "EndpointConfigName": "support-v2-abc123",
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "CANARY",
                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                            "WaitIntervalInSeconds": 120,
                        },
                        "TerminationWaitInSeconds": 120,
                        "MaximumExecutionTimeoutInSeconds": 720,
                    },
                    "AutoRollbackConfiguration": {
                        "Alarms": [{"AlarmName": "support-5xx"}, {"AlarmName": "support-latency"}]
                    },
                },
            },
        )
        deployment = SageMakerDeployer(settings, container, client).deploy(version("2"))
        stub.assert_no_pending_responses()
    assert deployment.status == "Updating"


@mock_aws
def test_bedrock_import_job_request(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="art")
    s3.put_object(Bucket="art", Key="runs/abc123/model/config.json", Body=json.dumps({"model_type": "llama"}))
    bedrock = boto3.client("bedrock")
    with Stubber(bedrock) as stub:
        stub.add_response(
            "create_model_import_job",
            {"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-import-job/xyz"},
            {
                "jobName": "support-v2-abc123",
                "importedModelName": "support-v2-abc123",
                "roleArn": BEDROCK_ROLE,
                "modelDataSource": {"s3DataSource": {"s3Uri": "s3://art/runs/abc123/model/"}},
                "importedModelKmsKeyId": KMS,
                "vpcConfig": {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-1"]},
            },
        )
        deployment = BedrockDeployer(AWS, bedrock).deploy(version())
    assert deployment.model_arn.endswith("model-import-job/xyz") and deployment.status == "Importing"


def test_bedrock_without_an_import_role_is_refused(aws_env):
    """The stack's Bedrock role is what import jobs run as; without one nothing could read the model."""
    from dataclasses import replace

    with pytest.raises(DeploymentRefused, match="TRAINFORGE_BEDROCK_ROLE_ARN"):
        BedrockDeployer(replace(AWS, bedrock_role_arn=""), boto3.client("bedrock"))


@mock_aws
def test_bedrock_refuses_unimportable_architecture_before_any_call(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="art")
    s3.put_object(Bucket="art", Key="runs/abc123/model/config.json", Body=json.dumps({"model_type": "gpt2"}))
    bedrock = boto3.client("bedrock")
    with Stubber(bedrock), pytest.raises(DeploymentRefused, match=r"model_type 'gpt2'.*Llama.*sagemaker_endpoint"):
        BedrockDeployer(AWS, bedrock).deploy(version())
