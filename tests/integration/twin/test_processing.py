"""CreateProcessingJob through the twin: trainforge-evaluate runs from the GPU image's venv."""

from __future__ import annotations

import json

import boto3

from tests.integration.twin.conftest import BUCKET, wait
from tests.twin.fixtures import GPU_IMAGE

ROOT = "/opt/ml/processing"


def evaluation_request(name: str, role: str, model_uri: str, data_uri: str, config_uri: str) -> dict:
    def source(input_name: str, uri: str) -> dict:
        return {"InputName": input_name, "S3Input": {"S3Uri": uri, "LocalPath": f"{ROOT}/input/{input_name}", "S3DataType": "S3Prefix", "S3InputMode": "File"}}  # fmt: skip

    output = {"S3Uri": f"s3://{BUCKET}/evaluation/{name}/", "LocalPath": f"{ROOT}/output", "S3UploadMode": "EndOfJob"}
    return {
        "ProcessingJobName": name,
        "RoleArn": role,
        "AppSpecification": {"ImageUri": GPU_IMAGE, "ContainerEntrypoint": ["trainforge-evaluate"]},
        "ProcessingInputs": [
            source("model", model_uri),
            source("base_model", model_uri),
            source("data", data_uri),
            source("config", config_uri),
        ],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": output}]},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"TRAINFORGE_RUN": "r1"},
    }


def test_an_evaluation_job_runs_the_entrypoint_and_uploads_its_report(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri, s3
):
    config = {
        "run_id": "r1",
        "base_model": "tiny",
        "data_format": "auto",
        "evaluation": {"max_examples": 4, "generation_samples": 1, "max_new_tokens": 4},
    }
    s3.put_object(Bucket=BUCKET, Key="evaluation-config/evaluation.json", Body=json.dumps(config))
    sagemaker = boto3.client("sagemaker")
    request = evaluation_request(
        "twin-eval", sagemaker_role, base_model_uri, train_uri, f"s3://{BUCKET}/evaluation-config/"
    )
    sagemaker.create_processing_job(**request)

    described = wait(lambda: sagemaker.describe_processing_job(ProcessingJobName="twin-eval"), "ProcessingJobStatus")

    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    report = json.loads(s3.get_object(Bucket=BUCKET, Key="evaluation/twin-eval/report.json")["Body"].read())
    assert report["run_id"] == "r1"
    assert described["Environment"] == {"TRAINFORGE_RUN": "r1"}
    assert described["ProcessingResources"] == request["ProcessingResources"]  # moto drops it; the twin echoes it
    assert boto3.client("logs").describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs")["logStreams"]


def test_a_failing_processing_job_reports_its_exit_code(sagemaker_twin, sagemaker_role, base_model_uri, train_uri):
    sagemaker = boto3.client("sagemaker")  # no evaluation.json under input/config: the entrypoint exits 1
    request = evaluation_request("twin-eval-fail", sagemaker_role, base_model_uri, train_uri, f"s3://{BUCKET}/missing/")
    sagemaker.create_processing_job(**request)

    described = wait(
        lambda: sagemaker.describe_processing_job(ProcessingJobName="twin-eval-fail"), "ProcessingJobStatus"
    )

    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == "AlgorithmError: , exit code: 1"
