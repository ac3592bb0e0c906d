"""SageMaker Model Registry against moto: group, packages, approval updates."""

from __future__ import annotations

import boto3
from moto import mock_aws

from trainforge.registry.sagemaker import SageMakerRegistry

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge:latest"


@mock_aws
def test_group_packages_and_approval(aws_env, registration):
    client = boto3.client("sagemaker")
    registry = SageMakerRegistry(IMAGE, client)
    first = registry.register(registration("run-a", True, "Approved"))
    second = registry.register(registration("run-b", False, "Rejected"))
    assert client.describe_model_package_group(ModelPackageGroupName="support")["ModelPackageGroupName"] == "support"
    assert (first.version, first.approval, second.version, second.approval) == ("1", "Approved", "2", "Rejected")
    package = client.describe_model_package(ModelPackageName=first.arn)
    assert (
        package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://art/runs/run-a/evaluation/report.json"
    )
    assert package["CustomerMetadataProperties"]["gate"] == "passed"
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE
    pending = registry.register(registration("run-c", True, "PendingManualApproval"))
    approved = registry.set_approval(pending, "Approved")
    assert approved.approval == "Approved"
    assert [(v.run_id, v.approval) for v in registry.versions("support")] == [
        ("run-a", "Approved"),
        ("run-b", "Rejected"),
        ("run-c", "Approved"),
    ]
