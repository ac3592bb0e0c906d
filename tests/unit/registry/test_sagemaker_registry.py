"""SageMaker Model Registry against moto: group, packages, approval updates."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.unit.registry.conftest import IMAGE
from trainforge.errors import RegistryError
from trainforge.registry.sagemaker import SageMakerRegistry


@mock_aws
def test_group_packages_and_approval(aws_env, registration):
    client = boto3.client("sagemaker")
    registry = SageMakerRegistry(client)
    first = registry.register(registration("run-a", True, "Approved"))
    second = registry.register(registration("run-b", False, "Rejected"))
    assert client.describe_model_package_group(ModelPackageGroupName="support")["ModelPackageGroupName"] == "support"
    assert (first.version, first.approval, second.version, second.approval) == ("1", "Approved", "2", "Rejected")
    package = client.describe_model_package(ModelPackageName=first.arn)
    assert (
        package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://art/runs/run-a/evaluation/report.json"
    )
    assert package["CustomerMetadataProperties"]["gate"] == "passed"
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE  # the serving container
    assert package["CustomerMetadataProperties"]["perplexity_tuned"] == "8.0000"
    pending = registry.register(registration("run-c", True, "PendingManualApproval"))
    approved = registry.set_approval(pending, "Approved")
    assert approved.approval == "Approved"
    assert [(v.run_id, v.approval) for v in registry.versions("support")] == [
        ("run-a", "Approved"),
        ("run-b", "Rejected"),
        ("run-c", "Approved"),
    ]


@mock_aws
def test_a_package_without_its_serving_container_is_refused(aws_env, registration):
    """A model package records how to serve it; one registered without would not deploy as registered."""
    from dataclasses import replace

    with pytest.raises(RegistryError, match="serving container"):
        SageMakerRegistry(boto3.client("sagemaker")).register(
            replace(registration("run-a", True, "Approved"), container=None)
        )
