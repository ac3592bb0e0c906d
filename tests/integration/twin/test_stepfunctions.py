"""Step Functions' SageMaker integrations in moto's engine, through the twin."""

from __future__ import annotations

import json
import time

import boto3

from tests.integration.twin.conftest import BUCKET, trusted_role, wait
from tests.twin.fixtures import GPU_IMAGE


def processing_job(name: str, role: str, code: str) -> dict:
    """A processing job whose container runs ``python -c code`` from the GPU image's venv (seconds)."""
    return {
        "ProcessingJobName": name,
        "RoleArn": role,
        "AppSpecification": {"ImageUri": GPU_IMAGE, "ContainerEntrypoint": ["python", "-c", code]},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def run(definition: dict, execution_input: dict, stop_after: float | None = None) -> dict:
    sfn = boto3.client("stepfunctions")
    role = trusted_role("states.amazonaws.com", f"sfn-{time.monotonic_ns()}")
    machine = sfn.create_state_machine(
        name=f"twin-{time.monotonic_ns()}", definition=json.dumps(definition), roleArn=role
    )
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(execution_input))
    if stop_after is not None:
        time.sleep(stop_after)
        sfn.stop_execution(executionArn=execution["executionArn"])
    deadline = time.monotonic() + 120
    while (described := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return described


def task(resource: str, parameters: dict) -> dict:
    return {
        "StartAt": "Task",
        "States": {"Task": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}},
    }


def test_sync_waits_for_the_job_and_outputs_its_description(sagemaker_twin, sagemaker_role):
    job = processing_job("sync-ok", sagemaker_role, "print('done')")

    described = run(task("arn:aws:states:::sagemaker:createProcessingJob.sync", job), {})

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["ProcessingJobStatus"] == "Completed"
    assert output["AppSpecification"] == job["AppSpecification"]
    assert isinstance(output["ProcessingEndTime"], int)  # epoch milliseconds


def test_sync_fails_the_task_with_the_description_as_cause(sagemaker_twin, sagemaker_role):
    described = run(
        task(
            "arn:aws:states:::sagemaker:createProcessingJob.sync",
            processing_job("sync-fail", sagemaker_role, "raise SystemExit(3)"),
        ),
        {},
    )

    assert described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    cause = json.loads(described["cause"])
    assert cause["ProcessingJobStatus"] == "Failed"
    assert cause["FailureReason"] == "AlgorithmError: , exit code: 3"


def test_stopping_the_execution_stops_the_job(sagemaker_twin, sagemaker_role):
    job = processing_job("sync-stop", sagemaker_role, "import time; time.sleep(600)")

    described = run(task("arn:aws:states:::sagemaker:createProcessingJob.sync", job), {}, stop_after=3)

    assert described["status"] == "ABORTED"
    sagemaker = boto3.client("sagemaker")
    assert (
        wait(lambda: sagemaker.describe_processing_job(ProcessingJobName="sync-stop"), "ProcessingJobStatus", 60)[
            "ProcessingJobStatus"
        ]
        == "Stopped"
    )


def test_an_api_error_is_named_as_step_functions_names_it(sagemaker_twin, sagemaker_role):
    job = processing_job("sync-twice", sagemaker_role, "print('done')")
    boto3.client("sagemaker").create_processing_job(**job)
    wait(
        lambda: boto3.client("sagemaker").describe_processing_job(ProcessingJobName="sync-twice"), "ProcessingJobStatus"
    )

    described = run(
        task(
            "arn:aws:states:::sagemaker:createModel",
            {
                "ModelName": "m",
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/missing",
                "PrimaryContainer": {"Image": GPU_IMAGE},
            },
        ),
        {},
    )

    assert described["status"] == "FAILED"
    assert described["error"] == "SageMaker.AmazonSageMakerException"  # the rule's ValidationException
    assert "(Service: AmazonSageMaker; Status Code: 400; Error Code: ValidationException" in described["cause"]
    sagemaker_twin.violations.clear()  # the unknown role is the point here


def test_aws_sdk_tasks_read_the_twins_state(sagemaker_twin, sagemaker_role, base_model_uri):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=sagemaker_role, PrimaryContainer={"Image": GPU_IMAGE, "ModelDataSource": {"S3DataSource": {"S3Uri": base_model_uri, "S3DataType": "S3Prefix", "CompressionType": "None"}}})  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName="m", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="m")
    bedrock_role = trusted_role("bedrock.amazonaws.com", "twin-bedrock")
    job = boto3.client("bedrock").create_model_import_job(
        jobName="import-1",
        importedModelName="tiny",
        roleArn=bedrock_role,
        modelDataSource={"s3DataSource": {"s3Uri": base_model_uri}},
    )

    endpoint = run(task("arn:aws:states:::aws-sdk:sagemaker:describeEndpoint", {"EndpointName": "e"}), {})
    imported = run(task("arn:aws:states:::aws-sdk:bedrock:getModelImportJob", {"JobIdentifier": job["jobArn"]}), {})

    assert json.loads(endpoint["output"])["EndpointStatus"] == "Creating"  # moto alone says InService
    assert json.loads(imported["output"])["JobName"] == "import-1"
    assert BUCKET in base_model_uri


def test_a_payload_key_that_is_an_asl_keyword_is_bound_as_a_path(sagemaker_twin):
    """Step Functions binds every key ending in .$; moto's grammar kept "RoleArn.$" as a literal key, so a
    CreateTrainingJob whose role comes from the state went out without one."""
    definition = {
        "StartAt": "Bind",
        "States": {
            "Bind": {
                "Type": "Pass",
                "Parameters": {"RoleArn.$": "$.role", "Nested": {"RoleArn.$": "States.Format('{}', $.role)"}},
                "End": True,
            }
        },
    }
    described = run(definition, {"role": "arn:aws:iam::123456789012:role/r"})
    assert json.loads(described["output"]) == {
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "Nested": {"RoleArn": "arn:aws:iam::123456789012:role/r"},
    }
