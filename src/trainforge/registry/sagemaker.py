"""SageMakerRegistry: one model package group per job, one model package per trained model, with the
evaluation report attached as model quality statistics and the approval status the gate decided.
An approval change (by a person in Studio, or by ``set_approval``) is what a deployment pipeline keys on."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.contracts import ModelVersion
from trainforge.errors import RegistryError
from trainforge.registry.base import Approval, Registration


class SageMakerRegistry:
    def __init__(self, client: Any = None) -> None:
        self.client = client or boto3.client("sagemaker")

    def _ensure_group(self, name: str) -> None:
        try:
            self.client.describe_model_package_group(ModelPackageGroupName=name)
        except ClientError:
            self.client.create_model_package_group(
                ModelPackageGroupName=name, ModelPackageGroupDescription=f"TrainForge models of job {name}"
            )

    def register(self, registration: Registration) -> ModelVersion:
        if registration.container is None:
            raise RegistryError("a SageMaker model package needs the serving container of the model")
        self._ensure_group(registration.name)
        verdict = registration.evaluation.verdict
        evaluation = registration.evaluation
        primary = next((m for m in evaluation.metrics if m.name == evaluation.primary), None)
        metadata = {
            "run_id": registration.run_id,
            "bom_uri": registration.bom_uri,
            "gate": "passed" if verdict and verdict.passed else "failed",
        }
        if primary is not None:
            metadata |= {f"{primary.name}_base": f"{primary.base:.4f}", f"{primary.name}_tuned": f"{primary.tuned:.4f}"}
        request: dict[str, Any] = {
            "ModelPackageGroupName": registration.name,
            "ModelPackageDescription": f"TrainForge run {registration.run_id}",
            "InferenceSpecification": {
                # the container that serves it (LMI or this project's), so a package deploys as registered
                "Containers": [registration.container],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/event-stream"],
            },
            "ModelApprovalStatus": registration.approval,
            "CustomerMetadataProperties": metadata,
        }
        if registration.report_uri:
            request["ModelMetrics"] = {
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": registration.report_uri}}
            }
        try:
            arn = self.client.create_model_package(**request)["ModelPackageArn"]
        except ClientError as exc:
            raise RegistryError(f"CreateModelPackage for {registration.name} failed: {exc}") from exc
        return self._describe(arn)

    def _describe(self, arn: str) -> ModelVersion:
        package = self.client.describe_model_package(ModelPackageName=arn)
        metadata = package.get("CustomerMetadataProperties", {})
        source = package["InferenceSpecification"]["Containers"][0]
        model_uri = source.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri") or source.get(
            "ModelDataUrl", ""
        )
        return ModelVersion(
            run_id=metadata.get("run_id", ""),
            registry="sagemaker",
            name=package["ModelPackageGroupName"],
            version=str(package["ModelPackageVersion"]),
            arn=arn,
            approval=package["ModelApprovalStatus"],
            model_uri=model_uri,
            bom_uri=metadata.get("bom_uri", ""),
        )

    def set_approval(self, version: ModelVersion, approval: Approval) -> ModelVersion:
        assert version.arn is not None
        # Re-sending the metadata we own is a no-op on AWS (it merges) and keeps it where an emulator
        # replaces the properties on every update (moto 5.2 does).
        self.client.update_model_package(
            ModelPackageArn=version.arn,
            ModelApprovalStatus=approval,
            ApprovalDescription=f"set to {approval} through TrainForge",
            CustomerMetadataProperties={"run_id": version.run_id, "bom_uri": version.bom_uri},
        )
        return self._describe(version.arn)

    def versions(self, name: str) -> list[ModelVersion]:
        pages = self.client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=name)
        arns = [summary["ModelPackageArn"] for page in pages for summary in page["ModelPackageSummaryList"]]
        return sorted((self._describe(arn) for arn in arns), key=lambda v: int(v.version))
