"""Every request reaches the rules as it went over the wire; a violation is refused as AWS refuses it; the
twin leaves moto exactly as it found it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.bedrock.responses import BedrockResponse
from moto.core.responses import BaseResponse
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

from tests.twin import ImageRegistry, SageMakerTwin, VenvBuilder
from tests.unit.twin.conftest import Recorded


def test_a_violation_is_a_400_validation_exception_and_is_recorded(bare_twin, recorded):
    recorded.refuse["sagemaker:CreateModel"] = "model.rule: ExecutionRoleArn is wrong (https://docs.aws.amazon.com/x)"

    with pytest.raises(ClientError) as refused:
        boto3.client("sagemaker").create_model(
            ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
        )

    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationException", 400)
    assert (
        error["Error"]["Message"]
        == "1 validation error detected: model.rule: ExecutionRoleArn is wrong (https://docs.aws.amazon.com/x)"
    )
    assert [(v.api, v.message) for v in bare_twin.violations] == [
        ("sagemaker:CreateModel", recorded.refuse["sagemaker:CreateModel"])
    ]
    with pytest.raises(ClientError, match="Could not find model"):  # refused before moto recorded anything
        boto3.client("sagemaker").describe_model(ModelName="m")


def test_rules_see_each_protocols_request_under_the_apis_own_names(bare_twin, recorded):
    boto3.client("sagemaker").list_models(MaxResults=5)
    with pytest.raises(ClientError):
        boto3.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="e", Body=b'{"inputs": "hi"}', ContentType="application/json"
        )
    with pytest.raises(ClientError):
        boto3.client("bedrock").get_model_import_job(jobIdentifier="job-1")
    boto3.client("scheduler").create_schedule(
        Name="nightly",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "RoleArn": "arn:aws:iam::123456789012:role/s",
        },
    )

    seen = dict(recorded.seen)
    assert seen["sagemaker:ListModels"] == {"MaxResults": 5}
    assert seen["sagemaker:InvokeEndpoint"] == {
        "EndpointName": "e",
        "Body": b'{"inputs": "hi"}',
        "ContentType": "application/json",
    }
    assert seen["bedrock:GetModelImportJob"] == {"jobIdentifier": "job-1"}
    assert seen["scheduler:CreateSchedule"]["Name"] == "nightly"
    assert seen["scheduler:CreateSchedule"]["FlexibleTimeWindow"] == {"Mode": "OFF"}


def test_uninstall_restores_moto(aws_env, tmp_path):
    before = (
        BaseResponse.call_action,
        SageMakerResponse.create_training_job,
        state_task_factory.state_task_service_for,
    )
    images = ImageRegistry(VenvBuilder(tmp_path / "cache", tmp_path / "session"))

    with mock_aws(), SageMakerTwin(images, tmp_path / "twin", rules=Recorded()):
        assert BaseResponse.call_action is not before[0]
        assert "update_endpoint" in vars(SageMakerResponse) and "create_model_import_job" in vars(BedrockResponse)

    assert (
        BaseResponse.call_action,
        SageMakerResponse.create_training_job,
        state_task_factory.state_task_service_for,
    ) == before
    assert "update_endpoint" not in vars(SageMakerResponse) and "create_model_import_job" not in vars(BedrockResponse)


def test_a_job_whose_image_is_unknown_fails_as_an_internal_error(bare_twin):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_processing_job(
        ProcessingJobName="p",
        RoleArn="arn:aws:iam::123456789012:role/r",
        AppSpecification={"ImageUri": "unknown:1"},
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 1}
        },
    )
    bare_twin.processing_jobs["p"].thread.join(timeout=30)

    described = sagemaker.describe_processing_job(ProcessingJobName="p")

    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith(
        "InternalServerError: the SageMaker twin failed: LookupError: unknown:1"
    )
