"""A/B on SageMaker, through the twin: the Deploy and CheckParity steps and the rollout function, each the
Lambda handler the stack deploys, against the twin's endpoints (containers really serve).

Version 1 is deployed (created, parity, released); version 2 arrives with ``rollout: ab``: it is staged
as a second variant at weight 0 (a plain UpdateEndpoint: two containers start), answers its evaluation's
reference prompts by TargetVariant, and is released with UpdateEndpointWeightsAndCapacities at 90/10.
``promote`` moves the weights to 0/100 and the model packages' alias and approval; ``rollback`` restores
version 1's traffic and alias and rejects version 2.

The twin runs UpdateEndpoint without blue/green emulation (the new configuration's containers replace the
old ones at once) and routes an untargeted InvokeEndpoint to the first variant: weights are checked in
DescribeEndpoint, traffic by TargetVariant. The project's server stands in for LMI, as in every twin test.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.conftest import chat
from tests.integration.twin.conftest import BUCKET, wait
from tests.twin.fixtures import GPU_IMAGE
from trainforge.contracts import DatasetRef, ModelVersion, RunRequest
from trainforge.pipeline.admission import record_admission
from trainforge.pipeline.endpoint_handlers import handle_check_parity, handle_rollout
from trainforge.pipeline.handlers import handle_deploy, model_container
from trainforge.registry import Registration
from trainforge.settings import Settings
from trainforge.spec import parse_spec

SPEC = """name: support
base_model: tiny
data: {train: datasets/support/}
deploy: {instance_type: ml.g5.xlarge, rollout: {policy: ab, challenger_percent: 10}}
"""


@pytest.fixture
def stack(sagemaker_twin, s3, sagemaker_role, tiny_model_dir, tmp_path, monkeypatch):
    """What the pipeline has when Deploy starts: two registered versions with their evaluation references,
    and the stack's settings in the environment."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.integration.test_parity import registration
    from tests.taught import saying
    from trainforge.evaluation.parity import parity_reference
    from trainforge.registry.sagemaker import SageMakerRegistry

    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    for name, value in {
        "AWS_REGION": "us-east-1",
        "TRAINFORGE_ARTIFACTS_URI": f"s3://{BUCKET}",
        "TRAINFORGE_DATA_URI": f"s3://{BUCKET}",
        "TRAINFORGE_SAGEMAKER_ROLE_ARN": sagemaker_role,
        "TRAINFORGE_KMS_KEY_ARN": key,
        "TRAINFORGE_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718",
        "TRAINFORGE_SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60718",
        "TRAINFORGE_IMAGE_URI": GPU_IMAGE,
    }.items():
        monkeypatch.setenv(name, value)
    settings, spec = Settings(), parse_spec(SPEC)
    folders = {"run1": tiny_model_dir, "run2": saying(tiny_model_dir, tmp_path / "v2", " france")}
    versions, events = [], []
    for run_id, folder in folders.items():
        for path in Path(folder).iterdir():
            s3.upload_file(str(path), BUCKET, f"runs/{run_id}/model/{path.name}")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        reference = parity_reference(
            model, AutoTokenizer.from_pretrained(folder), [chat()], "chat", run_id=run_id, count=1, max_new_tokens=4
        )
        s3.put_object(Bucket=BUCKET, Key=f"runs/{run_id}/evaluation/parity.json", Body=reference.model_dump_json())
        request = RunRequest(
            run_id=run_id,
            job_name="support",
            spec_uri=f"s3://{BUCKET}/jobs/support.yaml",
            spec_sha256="0" * 64,
            datasets=[DatasetRef(uri=f"s3://{BUCKET}/datasets/support/a.jsonl", version_id=None, sha256="0" * 64)],
            trigger="upload",
            artifacts_uri=f"s3://{BUCKET}/runs/{run_id}",
        )
        record_admission(request, spec, settings.resolved_artifacts_uri())
        model_uri = f"s3://{BUCKET}/runs/{run_id}/model"
        container = model_container(model_uri, spec, settings)
        version = SageMakerRegistry().register(
            Registration(
                **{**registration(run_id, Path(folder)).__dict__, "model_uri": model_uri, "container": container}
            )
        )
        versions.append(version)
        events.append({"run": json.loads(request.model_dump_json()), "version": json.loads(version.model_dump_json())})
    return settings, versions, events


def deploy(event: dict, settings: Settings, retried: bool = False) -> dict:
    """Deploy, the wait for InService, CheckParity, the wait again: the steps the state machine runs.
    ``retried``: each handler runs twice, as when the state machine retries a Lambda error that came after
    the first attempt did its work; the second must return what the first did, not fail the run."""
    sagemaker = boto3.client("sagemaker")
    staged = handle_deploy(event, settings)
    if retried:
        assert handle_deploy(event, settings)["traffic"] == staged["traffic"]
    assert (
        wait(lambda: sagemaker.describe_endpoint(EndpointName="support"), "EndpointStatus")["EndpointStatus"]
        == "InService"
    )
    released = handle_check_parity(event, settings)
    if retried:
        again = handle_check_parity(event, settings)
        assert again["deployment"]["traffic"] == released["deployment"]["traffic"]
        assert again["parity_report"] == released["parity_report"]
    assert (
        wait(lambda: sagemaker.describe_endpoint(EndpointName="support"), "EndpointStatus")["EndpointStatus"]
        == "InService"
    )
    return {"staged": staged, "released": released}


def weights() -> dict[str, float]:
    variants = boto3.client("sagemaker").describe_endpoint(EndpointName="support")["ProductionVariants"]
    return {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in variants}


def alias(version: ModelVersion) -> tuple[str, str]:
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=version.arn)
    return package["CustomerMetadataProperties"].get("trainforge:alias", ""), package["ModelApprovalStatus"]


def answer(variant: str) -> str:
    body = json.dumps({"messages": [{"role": "user", "content": "hello how are you"}], "max_tokens": 3})
    reply = boto3.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="support", TargetVariant=variant, ContentType="application/json", Body=body
    )
    return json.loads(reply["Body"].read())["choices"][0]["message"]["content"]


@pytest.mark.slow  # three model servers start in the twin (v1, then v1 and v2 side by side): ~40 s on 2 cores
def test_ab_creates_two_weighted_variants_promote_and_rollback_move_traffic_and_alias(stack):
    settings, (v1, v2), (first, second) = stack
    deploy(first, settings)
    assert weights() == {"v1": 100.0} and alias(v1) == ("champion", "Approved")

    steps = deploy(second, settings, retried=True)
    assert steps["staged"]["traffic"] == {"v1": 100, "v2": 0}  # staged at no traffic before parity
    released = steps["released"]
    assert released["deployment"]["traffic"] == {"v1": 90, "v2": 10}
    assert released["parity_report"].endswith("runs/run2/parity-check.json")
    assert weights() == {"v1": 90.0, "v2": 10.0}
    assert answer("v2").split() == ["france"] * 3 and answer("v1").split() != ["france"] * 3
    assert alias(v1) == ("champion", "Approved") and alias(v2) == ("challenger", "Approved")

    promoted = handle_rollout({"action": "promote", "endpoint": "support"}, settings)
    assert promoted["champion"] == "v2" and promoted["traffic"] == {"v1": 0, "v2": 100}
    assert weights() == {"v1": 0.0, "v2": 100.0}
    assert alias(v2) == ("champion", "Approved") and alias(v1) == ("previous", "Approved")

    rolled_back = handle_rollout({"action": "rollback", "endpoint": "support"}, settings)
    assert rolled_back["champion"] == "v1" and rolled_back["rolled_back"] == "v2"
    assert weights() == {"v1": 100.0, "v2": 0.0}
    assert alias(v1) == ("champion", "Approved") and alias(v2) == ("rolled-back", "Rejected")
