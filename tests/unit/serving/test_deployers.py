"""SageMaker endpoints from rollout records (moto for a creation, botocore's Stubber for the updates moto
lacks, checked against SageMaker's service model) and Bedrock Custom Model Import (Stubber)."""

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
from trainforge.serving.rollout import (
    EndpointRecord,
    Variant,
    config_name,
    load_record,
    promote,
    release,
    save_record,
    stage,
    variant_of,
)
from trainforge.spec import RolloutSpec

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


ARTIFACTS_KEY = "artifacts"


def variant(n: str) -> Variant:
    return variant_of(version(n))


def deployer(client, tmp_path, **settings) -> SageMakerDeployer:
    endpoint = EndpointSettings(aws=AWS, artifacts_uri=tmp_path.as_uri(), **settings)
    return SageMakerDeployer(endpoint, lambda v: container(version(v.version)), client)


def serving(record: EndpointRecord, tmp_path) -> EndpointRecord:
    """A record as the deployer saved it when the endpoint last changed."""
    save_record(tmp_path.as_uri(), record)
    return record


def champion_v1(tmp_path, instances: int = 1) -> EndpointRecord:
    record, _ = release(stage(None, variant("1"), "support", 0, "ml.m5.xlarge", instances), RolloutSpec())
    return serving(record, tmp_path)


IN_SERVICE = {
    "EndpointName": "support",
    "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/support",
    "EndpointConfigName": "support-v1-x",
    "EndpointStatus": "InService",
    "CreationTime": "2026-11-01T00:00:00Z",
    "LastModifiedTime": "2026-11-01T00:00:00Z",
}
MISSING = {"service_error_code": "ValidationException", "service_message": "Could not find it"}


@pytest.mark.parametrize(("instance", "key"), [("ml.g4dn.xlarge", None), ("ml.m5.xlarge", KMS)])
@mock_aws
def test_a_first_version_creates_model_config_and_endpoint(aws_env, tmp_path, instance, key):
    """Given a first version, when staged, then the model is isolated in the VPC, the endpoint serves it alone,
    and the configuration carries the volume key only for an EBS-only type (types with local NVMe refuse one)."""
    client = boto3.client("sagemaker")
    sent: dict = {}
    client.meta.events.register("provide-client-params.sagemaker.CreateModel", lambda params, **_: sent.update(params))
    record = stage(None, variant("1"), "support", 0, instance)
    assert deployer(client, tmp_path).apply(record, None) == "Creating"
    assert sent["EnableNetworkIsolation"] is True and sent["VpcConfig"]["Subnets"] == ["subnet-a", "subnet-b"]
    assert client.describe_model(ModelName="support-v1-abc123")["PrimaryContainer"]["Image"] == IMAGE
    config = client.describe_endpoint_config(EndpointConfigName=config_name(record))
    (served,) = config["ProductionVariants"]
    assert config.get("KmsKeyId") == key and (served["VariantName"], served["ModelName"]) == ("v1", "support-v1-abc123")
    assert served["InitialVariantWeight"] == 100.0 and not config.get("DataCaptureConfig")
    assert client.describe_endpoint(EndpointName="support")["EndpointConfigName"] == config_name(record)
    assert load_record(tmp_path.as_uri(), "support") == record


def test_a_staged_version_joins_at_no_traffic_in_a_plain_update(aws_env, tmp_path):
    """The candidate beside the champion at weight 0: new variant names, so a plain UpdateEndpoint (blue/green
    guardrails need the old configuration's variant names)."""
    client = boto3.client("sagemaker")
    before = champion_v1(tmp_path)
    staged = stage(before, variant("2"), "support", 0)
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", IN_SERVICE, {"EndpointName": "support"})
        stub.add_response("describe_model", MODEL, {"ModelName": "support-v1-abc123"})
        stub.add_client_error("describe_model", **MISSING, expected_params={"ModelName": "support-v2-abc123"})
        stub.add_response(
            "create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/support-v2-abc123"}, ANY_MODEL
        )
        stub.add_client_error("describe_endpoint_config", **MISSING)
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x"},
            {"EndpointConfigName": config_name(staged), "ProductionVariants": ANY, "KmsKeyId": KMS},
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": IN_SERVICE["EndpointArn"]},
            {"EndpointName": "support", "EndpointConfigName": config_name(staged)},
        )
        status = deployer(client, tmp_path).apply(staged, before)
        stub.assert_no_pending_responses()
    assert status == "Updating"


def test_a_canary_shifts_through_the_guardrails_rolled_back_by_alarms_on_its_variant(aws_env, tmp_path):
    """The deployer creates the new variant's 5XX and latency alarms (in moto's CloudWatch) and names them
    in AutoRollbackConfiguration: without alarms guardrails never roll a canary back. The endpoint has the
    two instances a canary needs (its slice is at most half a variant's), and each variant keeps them."""
    client = boto3.client("sagemaker")
    staged = serving(stage(champion_v1(tmp_path, 2), variant("2"), "support", 0, instance_count=2), tmp_path)
    released, _ = release(staged, RolloutSpec(policy="canary", canary_percent=20, canary_wait_minutes=2))
    with Stubber(client) as stub:
        expect_new_configuration(
            stub,
            {
                "EndpointConfigName": config_name(released),
                "ProductionVariants": [weighted("v1", "1", 0.0, 2), weighted("v2", "2", 100.0, 2)],
                "KmsKeyId": KMS,
            },
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": IN_SERVICE["EndpointArn"]},
            {
                "EndpointName": "support",
                "EndpointConfigName": config_name(released),
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
                        "Alarms": [{"AlarmName": "tf-support-v2-5xx"}, {"AlarmName": "tf-support-v2-latency"}]
                    },
                },
            },
        )
        with mock_aws():
            cloudwatch = boto3.client("cloudwatch")
            endpoint = EndpointSettings(
                aws=AWS, artifacts_uri=tmp_path.as_uri(), alarm_prefix="tf", canary_percent=20, wait_seconds=120
            )
            status = SageMakerDeployer(endpoint, None, client, cloudwatch=cloudwatch).apply(
                released, staged, canary=True
            )
            alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
        stub.assert_no_pending_responses()
    assert status == "Updating" and set(alarms) == {"tf-support-v2-5xx", "tf-support-v2-latency"}
    errors, latency = alarms["tf-support-v2-5xx"], alarms["tf-support-v2-latency"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
    )
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == {"EndpointName": "support", "VariantName": "v2"}
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == ("ModelLatency", "p90", 3e7)


def test_ab_traffic_and_its_promotion_move_weights_without_new_instances(aws_env, tmp_path):
    client = boto3.client("sagemaker")
    staged = serving(stage(champion_v1(tmp_path), variant("2"), "support", 0), tmp_path)
    ab, _ = release(staged, RolloutSpec(policy="ab", challenger_percent=10))
    promoted = promote(ab)
    with Stubber(client) as stub:
        for after in (ab, promoted):
            stub.add_response("describe_endpoint", IN_SERVICE, {"EndpointName": "support"})
            stub.add_response(
                "update_endpoint_weights_and_capacities",
                {"EndpointArn": IN_SERVICE["EndpointArn"]},
                {
                    "EndpointName": "support",
                    "DesiredWeightsAndCapacities": [
                        {"VariantName": v.name, "DesiredWeight": float(v.weight)} for v in after.variants
                    ],
                },
            )
        for before, after in ((staged, ab), (ab, promoted)):
            assert deployer(client, tmp_path).apply(after, before) == "Updating"
        stub.assert_no_pending_responses()
    assert [v.weight for v in load_record(tmp_path.as_uri(), "support").variants] == [0, 100]


def test_a_shadow_with_capture_is_one_production_and_one_shadow_variant(aws_env, tmp_path):
    """The endpoint configuration request holds the shadow and the data capture (to the artifacts bucket, in
    the stack's key, JSON as text); the Stubber checks it against SageMaker's own service model."""
    client = boto3.client("sagemaker")
    staged = serving(stage(champion_v1(tmp_path), variant("2"), "support", 25), tmp_path)
    shadow, _ = release(staged, RolloutSpec(policy="shadow", shadow_percent=50))
    with Stubber(client) as stub:
        expect_new_configuration(
            stub,
            {
                "EndpointConfigName": config_name(shadow),
                "ProductionVariants": [weighted("v1", "1", 100.0)],
                "ShadowProductionVariants": [weighted("v2", "2", 50.0)],
                "DataCaptureConfig": {
                    "EnableCapture": True,
                    "InitialSamplingPercentage": 25,
                    "DestinationS3Uri": f"{tmp_path.as_uri()}/capture",
                    "KmsKeyId": KMS,
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
                },
                "KmsKeyId": KMS,
            },
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": IN_SERVICE["EndpointArn"]},
            {"EndpointName": "support", "EndpointConfigName": config_name(shadow)},
        )
        assert deployer(client, tmp_path).apply(shadow, staged) == "Updating"
        stub.assert_no_pending_responses()


def expect_new_configuration(stub: Stubber, request: dict) -> None:
    """An InService endpoint whose models v1 and v2 exist, and a configuration it has not run yet."""
    stub.add_response("describe_endpoint", IN_SERVICE, {"EndpointName": "support"})
    for n in ("1", "2"):
        stub.add_response("describe_model", MODEL, {"ModelName": f"support-v{n}-abc123"})
    stub.add_client_error("describe_endpoint_config", **MISSING)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x"
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": arn}, request)


def weighted(name: str, n: str, weight: float, instances: int = 1) -> dict:
    return {
        "VariantName": name,
        "ModelName": f"support-v{n}-abc123",
        "InstanceType": "ml.m5.xlarge",
        "InitialInstanceCount": instances,
        "InitialVariantWeight": weight,
        "ModelDataDownloadTimeoutInSeconds": 1800,
        "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
    }


MODEL = {
    "ModelName": "support-v1-abc123",
    "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/support-v1-abc123",
    "CreationTime": "2026-11-01T00:00:00Z",
}
ANY_MODEL = {
    "ModelName": "support-v2-abc123",
    "PrimaryContainer": ANY,
    "ExecutionRoleArn": ROLE,
    "EnableNetworkIsolation": True,
    "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-a", "subnet-b"]},
}


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
