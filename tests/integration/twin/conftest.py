"""The twin's own tests: plain boto3 calls against a tiny model, the containers really run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import chat
from tests.twin import fixtures
from tests.twin.fixtures import GPU_IMAGE

# the twin's fixtures, offered to the tests of this folder
twin_images, twin_aws, sagemaker_twin = fixtures.twin_images, fixtures.twin_aws, fixtures.sagemaker_twin

BUCKET = "twin-tests"
RUNNING = {"InProgress", "Stopping", "Creating", "Updating"}


def wait(describe: Callable[[], dict[str, Any]], status: str, timeout: float = 240) -> dict[str, Any]:
    """Describe until ``status`` is terminal; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        described = describe()
        if described[status] not in RUNNING:
            return described
        assert time.monotonic() < deadline, f"still {described[status]} after {timeout} s"
        time.sleep(0.5)


def trusted_role(service: str, name: str) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"]


@pytest.fixture
def s3(sagemaker_twin: Any) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def sagemaker_role(sagemaker_twin: Any) -> str:
    return trusted_role("sagemaker.amazonaws.com", "twin-sagemaker")


@pytest.fixture
def base_model_uri(s3: Any, tiny_model_dir: Path) -> str:
    for path in tiny_model_dir.iterdir():
        s3.upload_file(str(path), BUCKET, f"base-models/tiny/{path.name}")
    return f"s3://{BUCKET}/base-models/tiny/"


@pytest.fixture
def train_uri(s3: Any) -> str:
    rows = [json.dumps(chat(f"question {i}", "the answer is paris")) for i in range(24)]
    s3.put_object(Bucket=BUCKET, Key="data/train/part-1.jsonl", Body="\n".join(rows) + "\n")
    return f"s3://{BUCKET}/data/train/"


def channel(name: str, uri: str) -> dict[str, Any]:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}


def training_request(name: str, role: str, channels: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A CreateTrainingJob request for the tiny model on a CPU instance type (EBS-only: no local NVMe)."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": GPU_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": r'"loss": ([0-9.]+)'}],
        },
        "RoleArn": role,
        "HyperParameters": {
            "max_steps": "2",
            "batch_size": "2",
            "max_seq_len": "32",
            "lora_rank": "2",
            "device": '"cpu"',
        },
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output", "CompressionType": "NONE"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/checkpoints/{name}/"},
    }
    request.update(overrides)
    return request
