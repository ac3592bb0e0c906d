"""Rollouts on the AWS path, executed: the synthesized stacks on moto, SageMaker played by the twin
(``tests/integration/deployed.py``), three runs of one job against one endpoint.

Run 1 (``replace``) creates the endpoint; its version passes parity and becomes champion. Run 2
(``rollout: ab``) stages version 2 as a second variant at no traffic, CheckParity asks it the evaluation's
reference prompts by variant name, and only then do the weights move to the spec's split. Run 3 serves its
model with another chat template than evaluation used (the model folder's ``chat_template.jinja`` is
changed as Deploy starts: what a repackaged model, or an engine with its own template, does): parity
catches it, the endpoint goes back to what it served, the version is Rejected and the run fails with
ParityFailed, its reason in failure.json.

The twin switches an UpdateEndpoint's fleet all at once (no blue/green emulation) and reports weights in
DescribeEndpoint; Wait states are compressed to a second.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from tests.integration.test_aws_pipeline import SFT, spec

DEPLOY = "{{target: sagemaker_endpoint, instance_type: ml.g5.xlarge, max_model_len: 512{rollout}}}"
AB = ", rollout: {{policy: ab, challenger_percent: {share}, parity_tolerance: 0.001}}"


def weights(aws) -> dict[str, float]:
    deadline = time.monotonic() + 120
    while (endpoint := aws.sagemaker.describe_endpoint(EndpointName="support"))["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline, endpoint["EndpointStatus"]
        time.sleep(0.5)
    return {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]}


def approvals(aws) -> dict[str, tuple[str, str]]:
    packages = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    described = [aws.sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in packages]
    return {
        f"v{p['ModelPackageVersion']}": (
            p.get("CustomerMetadataProperties", {}).get("trainforge:alias", ""),
            p["ModelApprovalStatus"],
        )
        for p in described
    }


def serve_with_another_chat_template(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Deploy starts, the version's model folder gets a chat template that puts ': ' after the role
    where evaluation's put a newline (the tiny model's log-probabilities move by 2e-2 to 1e-1)."""
    deploy_model, dispatch = aws.deployed.function("deploy_model"), aws.deployed.dispatch

    def changed(function_name: str, payload: bytes) -> tuple[bytes, bool]:
        if function_name.rsplit(":", 1)[-1] in (deploy_model.name, deploy_model.arn):
            bucket, _, prefix = json.loads(payload)["version"]["model_uri"].removeprefix("s3://").partition("/")
            key = f"{prefix.rstrip('/')}/chat_template.jinja"
            template = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            assert "message['role'] + '\n'" in template
            aws.s3.put_object(
                Bucket=bucket, Key=key, Body=template.replace("message['role'] + '\n'", "message['role'] + ': '")
            )
        return dispatch(function_name, payload)

    monkeypatch.setattr(aws.deployed, "dispatch", changed)


@pytest.mark.slow  # three runs (train, evaluate, deploy) and five endpoint fleets in the twin: ~4 min on 2 cores
def test_ab_takes_traffic_after_parity_and_a_changed_serving_is_blocked(aws, monkeypatch):
    first = aws.run(spec(deploy=DEPLOY.format(rollout="")), data=SFT)
    assert first["status"] == "SUCCEEDED", first
    assert "CheckParity" in first["path"] and weights(aws) == {"v1": 100.0}
    assert approvals(aws) == {"v1": ("champion", "Approved")}

    second = aws.run(spec(deploy=DEPLOY.format(rollout=AB.format(share=10))), data=SFT)
    assert second["status"] == "SUCCEEDED", second
    path = second["path"]
    assert path.index("Deploy") < path.index("CheckParity") < path.index("DescribeReleasedEndpoint")
    check = aws.artifact(second["run_id"], "parity-check.json")
    assert check["passed"] and check["variant"] == "v2" and check["tokens_compared"] > 0
    assert weights(aws) == {"v1": 90.0, "v2": 10.0}
    assert aws.artifact(second["run_id"], "outcome.json")["deployment"]["traffic"] == {"v1": 90, "v2": 10}
    assert approvals(aws) == {"v1": ("champion", "Approved"), "v2": ("challenger", "Approved")}
    record = json.loads(aws.s3.get_object(Bucket=aws.artifacts, Key="deployments/support.json")["Body"].read())
    assert record["staged"] is None and record["challenger"]["name"] == "v2"

    serve_with_another_chat_template(aws, monkeypatch)
    third = aws.run(spec(deploy=DEPLOY.format(rollout=AB.format(share=20))), data=SFT)
    assert third["status"] == "FAILED" and third["error"] == "ParityFailed", third
    failure = aws.artifact(third["run_id"], "failure.json")
    assert (failure["state"], failure["error"]) == ("CheckParity", "ParityFailed")
    assert "does not answer as evaluation did, so no traffic moved" in failure["cause"]
    assert not aws.artifact(third["run_id"], "parity-check.json")["passed"]
    assert weights(aws) == {"v1": 90.0, "v2": 10.0}  # what it served before run 3
    assert approvals(aws)["v3"] == ("rolled-back", "Rejected") and approvals(aws)["v1"][0] == "champion"
    answer = boto3.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="support",
        TargetVariant="v2",
        ContentType="application/json",
        Body=json.dumps({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}),
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
