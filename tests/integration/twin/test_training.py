"""CreateTrainingJob through the twin: the GPU image's container really trains the tiny model."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.twin.conftest import BUCKET, channel, training_request, wait
from tests.twin.fixtures import NEURON_IMAGE


@pytest.mark.slow  # one real (2-step) training run: ~30 s on 2 cores, most of it importing torch
def test_a_job_trains_uploads_its_model_and_reports_metrics(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri, s3
):
    sagemaker = boto3.client("sagemaker")
    request = training_request(
        "twin-train", sagemaker_role, [channel("train", train_uri), channel("base_model", base_model_uri)]
    )
    sagemaker.create_training_job(**request, Environment={"TRAINFORGE_RUN": "r1"})

    first = sagemaker.describe_training_job(TrainingJobName="twin-train")
    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-train"), "TrainingJobStatus")

    assert first["TrainingJobStatus"] == "InProgress"
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"
    ]  # fmt: skip
    model = f"s3://{BUCKET}/output/twin-train/output/model/"
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == model
    keys = {
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="output/twin-train/output/model/")["Contents"]
    }
    assert {"config.json", "model.safetensors", "tokenizer.json", "trainforge.json"} <= {
        k.rsplit("/", 1)[-1] for k in keys
    }
    assert described["Environment"] == {"TRAINFORGE_RUN": "r1"}  # Describe echoes the request as sent
    assert (
        described["AlgorithmSpecification"]["MetricDefinitions"]
        == request["AlgorithmSpecification"]["MetricDefinitions"]
    )
    assert [m["MetricName"] for m in described["FinalMetricDataList"]] == ["train:loss"]
    assert described["TrainingTimeInSeconds"] >= 1
    # checkpoints folder synced to CheckpointConfig.S3Uri (metrics.jsonl lives there)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="checkpoints/twin-train/metrics.jsonl")["KeyCount"] == 1
    logs = boto3.client("logs")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs")["logStreams"][0]["logStreamName"]
    assert stream.startswith("twin-train/algo-1-")
    lines = [
        e["message"]
        for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)["events"]
    ]
    assert json.loads(lines[-1])["event"] == "exported"


def test_a_failing_job_reports_the_containers_failure_file(sagemaker_twin, sagemaker_role, train_uri):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**training_request("twin-no-base", sagemaker_role, [channel("train", train_uri)]))

    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-no-base"), "TrainingJobStatus")

    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("AlgorithmError: TrainingFailed: no base model in channel base_model")
    assert described["FailureReason"].endswith(", exit code: 1")
    assert "ModelArtifacts" not in described or not described["ModelArtifacts"]


def test_a_trainium_job_stops_at_the_products_no_neuron_device_error(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri
):
    sagemaker = boto3.client("sagemaker")
    request = training_request(
        "twin-trn", sagemaker_role, [channel("train", train_uri), channel("base_model", base_model_uri)]
    )
    request["AlgorithmSpecification"]["TrainingImage"] = NEURON_IMAGE
    request["HyperParameters"]["device"] = '"neuron"'
    request["ResourceConfig"]["InstanceType"] = "ml.trn1.2xlarge"
    sagemaker.create_training_job(**request)

    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-trn"), "TrainingJobStatus")

    assert described["TrainingJobStatus"] == "Failed"
    assert "no Neuron device is present" in described["FailureReason"]


def test_stop_training_job_terminates_the_container(sagemaker_twin, sagemaker_role, base_model_uri, train_uri):
    sagemaker = boto3.client("sagemaker")
    request = training_request(
        "twin-stop", sagemaker_role, [channel("train", train_uri), channel("base_model", base_model_uri)]
    )
    request["HyperParameters"]["max_steps"] = "100000"
    sagemaker.create_training_job(**request)
    deadline = time.monotonic() + 120
    while sagemaker_twin.training_jobs["twin-stop"].container is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    sagemaker.stop_training_job(TrainingJobName="twin-stop")
    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-stop"), "TrainingJobStatus")

    assert described["TrainingJobStatus"] == "Stopped"
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert not sagemaker_twin.training_jobs["twin-stop"].container.running
    with pytest.raises(ClientError, match="is in status Stopped"):
        sagemaker.stop_training_job(TrainingJobName="twin-stop")


def test_a_request_that_breaks_a_rule_is_refused_and_recorded(sagemaker_twin, sagemaker_role, train_uri):
    sagemaker = boto3.client("sagemaker")
    request = training_request("twin-kms", sagemaker_role, [channel("train", train_uri)])
    request["ResourceConfig"] = {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30,
                                 "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k"}  # fmt: skip

    with pytest.raises(ClientError) as refused:
        sagemaker.create_training_job(**request)

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [v.api for v in sagemaker_twin.violations] == ["sagemaker:CreateTrainingJob"]
    assert "VolumeKmsKeyId" in str(sagemaker_twin.violations[0])
    assert "twin-kms" not in sagemaker_twin.training_jobs  # nothing started
    sagemaker_twin.violations.clear()  # expected here; the fixture asserts none are left


def test_a_job_past_its_max_runtime_is_stopped(sagemaker_twin, sagemaker_role, base_model_uri, train_uri):
    sagemaker = boto3.client("sagemaker")
    request = training_request(
        "twin-slow", sagemaker_role, [channel("train", train_uri), channel("base_model", base_model_uri)]
    )
    request["HyperParameters"]["max_steps"] = "100000"
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 3}
    sagemaker.create_training_job(**request)

    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-slow"), "TrainingJobStatus")

    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "MaxRuntimeExceeded"
