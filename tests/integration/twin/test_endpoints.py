"""Endpoints through the twin: the model's container serves, InvokeEndpoint reaches it."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.twin.conftest import wait
from tests.twin.fixtures import GPU_IMAGE

LMI_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.33.0-lmi15.0.0-cu128"


def deploy(sagemaker, name: str, role: str, model_uri: str, image: str = GPU_IMAGE) -> None:
    """CreateModel + CreateEndpointConfig named ``name``."""
    source = {"S3Uri": model_uri, "S3DataType": "S3Prefix", "CompressionType": "None"}
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=role,
        PrimaryContainer={
            "Image": image,
            "ModelDataSource": {"S3DataSource": source},
            "Environment": {"HF_HUB_OFFLINE": "1"},
        },
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": "ml.g5.xlarge",
        "InitialInstanceCount": 1,
    }
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])


def generate(runtime, endpoint: str, **parameters) -> dict:
    body = json.dumps({"inputs": "hello how are you", "parameters": {"max_new_tokens": 4, **parameters}})
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=body, ContentType="application/json", Accept="application/json"
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(answer["Body"].read())


@pytest.mark.slow  # two model servers start (create, then update): ~30 s on 2 cores
def test_an_endpoint_serves_updates_and_is_deleted(sagemaker_twin, sagemaker_role, base_model_uri):
    sagemaker, runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
    deploy(sagemaker, "tiny-v1", sagemaker_role, base_model_uri)
    sagemaker.create_endpoint(EndpointName="tiny", EndpointConfigName="tiny-v1")

    creating = sagemaker.describe_endpoint(EndpointName="tiny")["EndpointStatus"]
    described = wait(lambda: sagemaker.describe_endpoint(EndpointName="tiny"), "EndpointStatus")

    assert creating == "Creating"
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert generate(runtime, "tiny")["generated_text"]
    with pytest.raises(ClientError) as refused:  # the container's 400 comes back as SageMaker's ModelError
        generate(runtime, "tiny", max_new_tokens=0)
    assert refused.value.response["Error"]["Code"] == "ModelError"
    assert refused.value.response["OriginalStatusCode"] == 400

    # the LMI image: the product's own server stands in for it, behind the same request
    deploy(sagemaker, "tiny-v2", sagemaker_role, base_model_uri, image=LMI_IMAGE)
    first_servers = list(sagemaker_twin.endpoints["tiny"].servers)
    sagemaker.update_endpoint(EndpointName="tiny", EndpointConfigName="tiny-v2")
    updating = sagemaker.describe_endpoint(EndpointName="tiny")["EndpointStatus"]
    described = wait(lambda: sagemaker.describe_endpoint(EndpointName="tiny"), "EndpointStatus")

    assert updating == "Updating"
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert described["EndpointConfigName"] == "tiny-v2"
    assert generate(runtime, "tiny")["generated_text"]
    first_servers[0].container.process.wait(timeout=30)  # the old configuration's container was stopped

    serving = list(sagemaker_twin.endpoints["tiny"].servers)
    sagemaker.delete_endpoint(EndpointName="tiny")
    assert all(server.container.process.wait(timeout=30) is not None for server in serving)
    with pytest.raises(ClientError, match="not found"):
        generate(runtime, "tiny")


def test_an_endpoint_whose_container_dies_fails_with_its_last_log_lines(sagemaker_twin, sagemaker_role, s3):
    sagemaker = boto3.client("sagemaker")
    s3.put_object(Bucket="twin-tests", Key="empty-model/README.md", Body=b"no weights here")
    deploy(sagemaker, "broken", sagemaker_role, "s3://twin-tests/empty-model/")
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="broken")

    described = wait(lambda: sagemaker.describe_endpoint(EndpointName="broken"), "EndpointStatus")

    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"].startswith(
        "The primary container for production variant AllTraffic did not pass the ping health check"
    )
    logs = boto3.client("logs")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/Endpoints/broken")["logStreams"][0]["logStreamName"]
    last = logs.get_log_events(logGroupName="/aws/sagemaker/Endpoints/broken", logStreamName=stream)["events"][-1]
    assert stream.startswith("AllTraffic/i-")
    assert described["FailureReason"].endswith(last["message"])  # the server's own last words, from its log
