"""BedrockDeployer: Bedrock Custom Model Import from the model's S3 folder.

Import accepts only some architectures; a model outside them is refused here, before a job is started,
with the list of what would work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from trainforge.contracts import Deployment, ModelVersion, VpcConfig
from trainforge.errors import DeploymentRefused
from trainforge.serving.deployers.sagemaker import resource_name
from trainforge.store import join, open_store

#: config.json model_type values Bedrock Custom Model Import accepts (Llama, Mistral, Mixtral, Qwen2/2.5)
IMPORTABLE = {"llama": "Llama", "mistral": "Mistral", "mixtral": "Mixtral", "qwen2": "Qwen2/2.5"}


@dataclass(frozen=True)
class ImportSettings:
    role_arn: str
    kms_key_id: str | None = None
    vpc: VpcConfig | None = None


def check_importable(config: dict[str, Any]) -> str:
    model_type = str(config.get("model_type", ""))
    if model_type not in IMPORTABLE:
        accepted = ", ".join(sorted(IMPORTABLE.values()))
        raise DeploymentRefused(
            f"Bedrock Custom Model Import does not accept model_type '{model_type}': accepted families are {accepted}; "
            "use deploy.target: sagemaker_endpoint for this model"
        )
    return IMPORTABLE[model_type]


class BedrockDeployer:
    def __init__(self, settings: ImportSettings, client: Any = None) -> None:
        self.settings = settings
        self.client = client or boto3.client("bedrock")

    def deploy(self, version: ModelVersion) -> Deployment:
        config_uri = join(version.model_uri, "config.json")
        check_importable(json.loads(open_store(config_uri).read_bytes(config_uri)))
        name = resource_name(version.name, version.version, version.run_id)
        request: dict[str, Any] = {
            "jobName": name,
            "importedModelName": name,
            "roleArn": self.settings.role_arn,
            "modelDataSource": {"s3DataSource": {"s3Uri": version.model_uri.rstrip("/") + "/"}},
        }
        if self.settings.kms_key_id:
            request["importedModelKmsKeyId"] = self.settings.kms_key_id
        if self.settings.vpc:
            request["vpcConfig"] = {
                "subnetIds": self.settings.vpc.subnets,
                "securityGroupIds": self.settings.vpc.security_group_ids,
            }
        job_arn = self.client.create_model_import_job(**request)["jobArn"]
        # model_arn holds the import job's ARN until the job completes and names the imported model
        return Deployment(
            run_id=version.run_id, target="bedrock_import", endpoint_name=name, model_arn=job_arn, status="Importing"
        )
