"""Bedrock Custom Model Import in the twin: the model folder is checked as Bedrock documents it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.twin import ImageRegistry, SageMakerTwin, VenvBuilder, rules
from tests.twin.fixtures import MOTO_CONFIG
from tests.unit.twin.conftest import role


def upload(folder: Path, prefix: str, skip: tuple[str, ...] = ()) -> str:
    s3 = boto3.client("s3")
    for path in folder.iterdir():
        if path.is_file() and path.name not in skip:
            s3.upload_file(str(path), "models", f"{prefix}/{path.name}")
    return f"s3://models/{prefix}/"


def imported(bedrock, job_arn: str) -> dict:
    deadline = time.monotonic() + 30
    while (job := bedrock.get_model_import_job(jobIdentifier=job_arn))["status"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return job


@pytest.fixture
def bedrock(aws_env, tmp_path):
    """The twin with the real rule table (so the role passed must be trusted by bedrock.amazonaws.com)."""
    images = ImageRegistry(VenvBuilder(tmp_path / "cache", tmp_path / "session"))
    with (
        mock_aws(config=MOTO_CONFIG),
        SageMakerTwin(images, tmp_path / "twin", rules=rules, import_seconds=0.2) as twin,
    ):
        boto3.client("s3").create_bucket(Bucket="models")
        yield boto3.client("bedrock"), twin


def test_a_model_folder_is_imported(bedrock, tiny_model_dir):
    client, twin = bedrock
    uri = upload(tiny_model_dir, "tiny")
    job = client.create_model_import_job(
        jobName="import-tiny",
        importedModelName="tiny",
        roleArn=role("bedrock.amazonaws.com", "import"),
        modelDataSource={"s3DataSource": {"s3Uri": uri}},
    )

    first = client.get_model_import_job(jobIdentifier="import-tiny")  # by name as well as by ARN
    done = imported(client, job["jobArn"])

    assert first["status"] == "InProgress"
    assert done["status"] == "Completed"
    model = client.get_imported_model(modelIdentifier=done["importedModelArn"])
    assert (model["modelName"], model["modelArchitecture"], model["jobArn"]) == (
        "tiny",
        "LlamaForCausalLM",
        job["jobArn"],
    )
    assert twin.violations == []


def test_a_model_of_another_architecture_fails_the_job(bedrock, tiny_model_dir, tmp_path):
    client, _ = bedrock
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    for path in tiny_model_dir.iterdir():
        (gpt2 / path.name).write_bytes(path.read_bytes())
    (gpt2 / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    source = {"s3DataSource": {"s3Uri": upload(gpt2, "gpt2")}}
    trusted = role("bedrock.amazonaws.com", "import")

    job = imported(
        client,
        client.create_model_import_job(jobName="b", importedModelName="b", roleArn=trusted, modelDataSource=source)[
            "jobArn"
        ],
    )

    assert job["status"] == "Failed"
    assert "GPT2LMHeadModel" in job["failureMessage"] and "is not supported" in job["failureMessage"]
    assert "importedModelArn" not in job
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_model_import_job(jobIdentifier="never-created")


def test_a_folder_without_its_tokenizer_is_refused_when_the_job_is_created(bedrock, tiny_model_dir):
    client, twin = bedrock
    source = {"s3DataSource": {"s3Uri": upload(tiny_model_dir, "partial", skip=("tokenizer.json",))}}

    with pytest.raises(ClientError, match=r"bedrock-import\.model-files"):
        client.create_model_import_job(
            jobName="a", importedModelName="a", roleArn=role("bedrock.amazonaws.com", "import"), modelDataSource=source
        )

    assert [v.api for v in twin.violations] == ["bedrock:CreateModelImportJob"]


def test_a_role_bedrock_cannot_assume_is_refused(bedrock, tiny_model_dir):
    client, twin = bedrock
    uri = upload(tiny_model_dir, "tiny")

    with pytest.raises(ClientError, match="ValidationException"):
        client.create_model_import_job(
            jobName="import-tiny",
            importedModelName="tiny",
            roleArn=role("sagemaker.amazonaws.com", "not-bedrock"),
            modelDataSource={"s3DataSource": {"s3Uri": uri}},
        )

    assert [v.api for v in twin.violations] == ["bedrock:CreateModelImportJob"]
    assert "not trusted by bedrock.amazonaws.com" in twin.violations[0].message
