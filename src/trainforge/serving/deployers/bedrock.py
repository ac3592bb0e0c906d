"""BedrockDeployer: Bedrock Custom Model Import from the model's S3 folder.

Import accepts only some architectures; a model outside them is refused here, before a job is started,
with the list of what would work. The job runs as the stack's Bedrock role (trusted by
bedrock.amazonaws.com, reading the run's folder) and returns while importing: the state machine polls
GetModelImportJob until Completed and fails the run on Failed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from trainforge.aws.sagemaker_requests import AwsResources, create_model_import_job
from trainforge.contracts import Deployment, ModelVersion
from trainforge.errors import DeploymentRefused
from trainforge.planning.deployability import BEDROCK_IMPORTABLE, bedrock_importable
from trainforge.serving.deployers.sagemaker import resource_name
from trainforge.store import join, open_store


def check_importable(config: dict[str, Any]) -> str:
    """The family Import will take this model as, or DeploymentRefused; the rule is the plan's
    (``planning.deployability``), which refuses such a run before training."""
    importable, why = bedrock_importable(config)
    if not importable:
        raise DeploymentRefused(why)
    return BEDROCK_IMPORTABLE[str(config["model_type"])]


class BedrockDeployer:
    def __init__(self, aws: AwsResources, client: Any = None) -> None:
        if not aws.bedrock_role_arn:
            raise DeploymentRefused("no Bedrock import role is configured (TRAINFORGE_BEDROCK_ROLE_ARN is empty)")
        self.aws = aws
        self.client = client or boto3.client("bedrock")

    def deploy(self, version: ModelVersion) -> Deployment:
        config_uri = join(version.model_uri, "config.json")
        check_importable(json.loads(open_store(config_uri).read_bytes(config_uri)))
        name = resource_name(version.name, version.version, version.run_id)
        job_arn = self.client.create_model_import_job(**create_model_import_job(name, version.model_uri, self.aws))[
            "jobArn"
        ]
        # model_arn holds the import job's ARN until the job completes and names the imported model
        return Deployment(
            run_id=version.run_id, target="bedrock_import", endpoint_name=name, model_arn=job_arn, status="Importing"
        )
