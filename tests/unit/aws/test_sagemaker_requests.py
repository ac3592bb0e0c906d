"""The SageMaker and Bedrock requests, built in one place: what each instance family changes in them."""

from __future__ import annotations

import json
import re

import pytest

from trainforge.aws.sagemaker_requests import (
    METRIC_DEFINITIONS,
    AwsResources,
    create_model_import_job,
    create_processing_job,
    create_training_job,
    lmi_image,
    placement,
    serving_container,
    serving_engine,
    volume_size_gb,
)
from trainforge.contracts import EvaluationRequest, TrainingRequest
from trainforge.errors import SpecInvalid
from trainforge.instances import instance_type

KMS = "arn:aws:kms:us-east-1:123456789012:key/k"
AWS = AwsResources(
    "us-east-1", "arn:aws:iam::123456789012:role/sm", KMS, ("subnet-a",), ("sg-1",), "arn:aws:iam::123456789012:role/br"
)
GPU, NEURON = "1.dkr.ecr.us-east-1.amazonaws.com/tf:gpu", "1.dkr.ecr.us-east-1.amazonaws.com/tf:neuron"


def training(instance: str, spot: bool = False) -> TrainingRequest:
    return TrainingRequest(
        run_id="support-abc",
        job_name="support",
        training_job_name="support-abc",
        image=GPU,
        instance_type=instance,
        instance_count=1,
        spot=spot,
        max_runtime_seconds=3 * 3600,
        max_wait_seconds=6 * 3600 if spot else None,
        volume_size_gb=40,
        channels={"train": "s3://a/runs/support-abc/data/train/", "base_model": "s3://a/base-models/m/"},
        hyperparameters={"max_steps": "10"},
        environment={"TRAINFORGE_NPROC_PER_NODE": "1"},
        checkpoint_uri="s3://a/runs/support-abc/train/checkpoints",
        output_uri="s3://a/runs/support-abc/train/output",
    )


def evaluation(instance: str) -> EvaluationRequest:
    return EvaluationRequest(
        run_id="support-abc",
        processing_job_name="support-abc-eval",
        image=GPU,
        instance_type=instance,
        inputs={"model": "s3://a/m/", "data": "s3://a/d/"},
        output_uri="s3://a/runs/support-abc/evaluation/",
        max_runtime_seconds=3600,
        volume_size_gb=40,
    )


@pytest.mark.parametrize(
    ("instance", "keyed"),
    [("ml.g5.2xlarge", False), ("ml.trn1.32xlarge", False), ("ml.m5.xlarge", True), ("ml.p3.2xlarge", True)],
)
def test_the_volume_key_is_sent_only_for_ebs_only_types(instance, keyed):
    """CreateTrainingJob and CreateProcessingJob refuse VolumeKmsKeyId for types with local NVMe storage:
    the default ml.g5.2xlarge job could not start while every request carried one."""
    job = create_training_job(training(instance), AWS)
    processing = create_processing_job(evaluation(instance), AWS)
    assert ("VolumeKmsKeyId" in job["ResourceConfig"]) is keyed
    assert ("VolumeKmsKeyId" in processing["ProcessingResources"]["ClusterConfig"]) is keyed
    assert job["OutputDataConfig"]["KmsKeyId"] == KMS and processing["ProcessingOutputConfig"]["KmsKeyId"] == KMS


def test_runtime_and_spot_wait_are_the_requests_own():
    on_demand = create_training_job(training("ml.g5.2xlarge"), AWS)
    assert on_demand["StoppingCondition"] == {"MaxRuntimeInSeconds": 10800}
    assert on_demand["EnableManagedSpotTraining"] is False
    spot = create_training_job(training("ml.g5.2xlarge", spot=True), AWS)
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 10800, "MaxWaitTimeInSeconds": 21600}
    assert spot["EnableManagedSpotTraining"] is True


def test_every_job_is_isolated_in_the_vpc_and_tagged():
    job = create_training_job(training("ml.g5.2xlarge"), AWS)
    processing = create_processing_job(evaluation("ml.g5.xlarge"), AWS)
    assert job["EnableNetworkIsolation"] and job["EnableInterContainerTrafficEncryption"]
    assert (
        processing["NetworkConfig"]["EnableNetworkIsolation"]
        and processing["NetworkConfig"]["EnableInterContainerTrafficEncryption"]
    )
    assert (
        job["VpcConfig"]
        == processing["NetworkConfig"]["VpcConfig"]
        == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-a"]}
    )
    assert {"Key": "trainforge:run-id", "Value": "support-abc"} in job["Tags"]
    assert [i["S3Input"]["LocalPath"] for i in processing["ProcessingInputs"]] == [
        "/opt/ml/processing/input/model",
        "/opt/ml/processing/input/data",
    ]


def test_metric_regexes_match_the_lines_the_loop_prints():
    """The loop prints json.dumps records; SageMaker matches each regex on every log line."""
    lines = [
        json.dumps({"step": 3, "total_steps": 9, "loss": 1.25, "lr": 2e-4, "tokens_per_s": 512.5}),
        json.dumps({"step": 3, "eval_loss": 1.5e-1}),
        json.dumps({"step": 6, "eval_loss": 0.125, "eval_exact_match": 0.75}),  # a run selecting by exact match
        json.dumps({"step": 4, "loss": 1.0}),  # a script of its own (method custom) need not print total_steps
        json.dumps({"event": "memory", "estimate_parts_mb": {"weights": 538, "loss": 96}}),  # not a loss
    ]
    found = {
        d["Name"]: [m.group(1) for line in lines if (m := re.search(d["Regex"], line))] for d in METRIC_DEFINITIONS
    }
    assert found == {
        "train:loss": ["1.25", "1.0"],
        "validation:loss": ["0.15", "0.125"],
        "validation:exact_match": ["0.75"],
        "train:tokens_per_s": ["512.5"],
    }


@pytest.mark.parametrize(
    ("instance", "image", "device", "processes"),
    [
        ("ml.trn1.32xlarge", NEURON, "neuron", "32"),
        ("ml.trn2.48xlarge", NEURON, "neuron", "64"),
        ("ml.g5.12xlarge", GPU, "cuda", "4"),
        ("ml.p4d.24xlarge", GPU, "cuda", "8"),
        ("ml.m5.xlarge", GPU, "cpu", "1"),
    ],
)
def test_image_device_and_processes_follow_the_family(instance, image, device, processes):
    placed = placement(instance_type(instance), GPU, NEURON)
    assert (placed.image, placed.device, placed.environment["TRAINFORGE_NPROC_PER_NODE"]) == (image, device, processes)


def test_a_trainium_job_without_a_trainium_image_is_refused_before_any_call():
    with pytest.raises(SpecInvalid, match="no Trainium image"):
        placement(instance_type("ml.trn1.2xlarge"), GPU, "")


def test_volume_never_exceeds_a_types_local_storage():
    assert volume_size_gb(instance_type("ml.g4dn.xlarge"), 100 * 2**30) == 125
    assert volume_size_gb(instance_type("ml.m5.xlarge"), 2**30) == 36


def test_serving_engine_and_container():
    assert serving_engine("auto", ["LlamaForCausalLM"]) == "lmi"
    assert serving_engine("auto", ["WhisperForConditionalGeneration"]) == "trainforge"
    with pytest.raises(SpecInvalid, match=r"deploy\.engine: trainforge"):
        serving_engine("lmi", ["WhisperForConditionalGeneration"])
    lmi = serving_container("s3://a/m", "lmi", name="support", max_model_len=4096, image_uri=GPU, region="af-south-1")
    assert lmi["Image"].startswith("626614931356.dkr.ecr.af-south-1.amazonaws.com/djl-inference:")
    assert lmi["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": "s3://a/m/",
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert "HF_MODEL_ID" not in lmi["Environment"]  # LMI loads the folder SageMaker mounts at /opt/ml/model
    # the dtype evaluation scored in (bf16 on a GPU), not LMI's "auto" (fp16 for a float32 export)
    assert lmi["Environment"]["OPTION_DTYPE"] == "bf16"
    t4 = serving_container(
        "s3://a/m", "lmi", name="s", max_model_len=64, image_uri=GPU, region="us-east-1", native_bf16=False
    )
    assert t4["Environment"]["OPTION_DTYPE"] == "fp16"  # vLLM has no bf16 before Ampere
    own = serving_container(
        "s3://a/m/", "trainforge", name="support", max_model_len=4096, image_uri=GPU, region="us-east-1"
    )
    assert own["Image"] == GPU
    assert lmi_image("cn-north-1").endswith(".amazonaws.com.cn/" + lmi["Image"].split("/", 1)[1])


def test_bedrock_import_runs_as_the_bedrock_role_into_the_stacks_key():
    request = create_model_import_job("support-v1-abc", "s3://a/m", AWS)
    assert request["roleArn"] == AWS.bedrock_role_arn and request["importedModelKmsKeyId"] == KMS
    assert request["modelDataSource"] == {"s3DataSource": {"s3Uri": "s3://a/m/"}}
