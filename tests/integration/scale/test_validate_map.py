"""The proposed Validate map -> reduce (``validate_map.asl.json``) executed by moto's Step Functions engine,
with the real plan, shard and merge handlers in-process.

moto 5.2.5's engine (a port of LocalStack's) runs a Distributed Map: its ItemReader reads the plan's JSON
manifest from S3, each item runs as a child execution whose Lambda task reaches the real handler, and
MaxConcurrencyPath / ToleratedFailurePercentagePath are read from the plan's output. Its ResultWriter
writes only the map run's manifest (no result files): the merge reads the partial reports the plan names,
never the map's results, so that gap does not hide anything here.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.conftest import FakeContext, load_handler
from tests.unit.data.test_shards import _line
from trainforge.data import validate_dataset
from trainforge.data.shards import options_from_json
from trainforge.pipeline.admission import admit, record_admission
from trainforge.pipeline.validation_fanout import ValidationPlan
from trainforge.store import open_store

DATA, ARTIFACTS = "tf-data", "tf-artifacts"
FRAGMENT = Path(__file__).with_name("validate_map.asl.json")
FUNCTIONS = {
    "PlanValidationFunctionArn": "plan_validation",
    "ValidateShardFunctionArn": "validate_shard",
    "MergeValidationFunctionArn": "merge_validation",
}
SPEC = """name: support
base_model: tiny
method: lora
data: {train: datasets/support/, validation_fraction: 0.2, limits: {max_line_bytes: 2048}}
hyperparameters: {max_steps: 10, batch_size: 4, max_seq_len: 64}
compute: {instance_type: ml.g5.2xlarge, spot: false}
deploy: {target: none, approval: auto}
"""


def definition(arns: dict[str, str]) -> str:
    """The fragment's states as a state machine: Prepare and ValidateFailed stand in for the real ones."""
    values = arns | {"ArtifactsBucketName": ARTIFACTS}
    fragment = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], FRAGMENT.read_text()))
    states = fragment["States"] | {
        "Prepare": {"Type": "Pass", "End": True},
        "ValidateFailed": {"Type": "Pass", "Result": "Validate", "ResultPath": "$.failed_state", "End": True},
    }
    return json.dumps({"StartAt": fragment["StartAt"], "States": states})


def dispatch(function_name: str, body: bytes) -> tuple[bytes, bool]:
    """Run the real handler; an exception comes back as Lambda reports it (errorType = class name)."""
    handler = load_handler(function_name.rsplit(":", 1)[-1])
    try:
        return json.dumps(handler(json.loads(body), FakeContext())).encode(), False
    except Exception as exc:  # a function error, as Lambda surfaces it to the state machine
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode(), True


@pytest.fixture
def aws(aws_env, monkeypatch, tiny_model_dir):
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        payload, failed = dispatch(function_name, body)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        s3 = boto3.client("s3")
        for bucket in (DATA, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for path in tiny_model_dir.iterdir():
            s3.upload_file(str(path), ARTIFACTS, f"base-models/tiny-llama-test/{path.name}")
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambdas = boto3.client("lambda")
        arns = {
            key: lambdas.create_function(
                FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": b"x"}
            )["FunctionArn"]
            for key, name in FUNCTIONS.items()
        }
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(name="validate", roleArn=role, definition=definition(arns))
        monkeypatch.setenv("TRAINFORGE_DATA_URI", f"s3://{DATA}")
        monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{ARTIFACTS}")
        monkeypatch.setenv("TRAINFORGE_VALIDATION_SHARD_BYTES", "4096")
        monkeypatch.setenv("TRAINFORGE_VALIDATION_MAX_CONCURRENCY", "3")
        yield s3, sfn, machine["stateMachineArn"]


def start(aws, objects: dict[str, bytes]) -> tuple[str, dict]:
    s3, sfn, machine = aws
    for key, body in objects.items():
        s3.put_object(Bucket=DATA, Key=key, Body=body)
    version = s3.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=SPEC.encode())["VersionId"]
    request, spec = admit(
        f"s3://{DATA}/jobs/support.yaml", SPEC.encode(), version, f"s3://{DATA}", f"s3://{ARTIFACTS}", "upload"
    )
    record_admission(request, spec, f"s3://{ARTIFACTS}")
    arn = sfn.start_execution(
        stateMachineArn=machine, name=request.run_id, input=json.dumps({"run": request.model_dump(mode="json")})
    )["executionArn"]
    deadline = time.time() + 120
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.time() < deadline, "the execution did not finish"
        time.sleep(0.2)
    return request.run_id, described


def dataset(seed: int, lines: int) -> bytes:
    rng = random.Random(seed)
    pool: list[bytes] = []
    return b"\n".join(line for line in (_line(rng, pool) for _ in range(lines)) if len(line) < 1500) + b"\n"


def test_the_map_validates_every_shard_and_the_merge_equals_the_whole_pass(aws):
    """Given three objects, one cut into many shards, when the map -> reduce runs, then every shard ran as a
    child execution and the run's report equals the whole pass over the same object versions."""
    rng = random.Random(1)
    pool: list[bytes] = []
    clean = b"".join(_clean_line(rng, pool) for _ in range(300))
    copies = b"".join(rng.choice(pool) for _ in range(20))  # duplicates of records in other objects and shards
    run_id, execution = start(aws, {"datasets/support/a.jsonl": clean, "datasets/support/b.jsonl": copies})
    output = json.loads(execution["output"])
    assert execution["status"] == "SUCCEEDED" and "error" not in output, output.get("error")
    s3 = aws[0]
    plan_uri = f"s3://{ARTIFACTS}/runs/{run_id}/validation/plan.json"
    plan = ValidationPlan.model_validate_json(open_store(plan_uri).read_bytes(plan_uri))
    assert output["validation"]["value"]["shards"] == len(plan.plan.shards) > 10
    partials = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"runs/{run_id}/validation/partials/")["Contents"]
    assert len(partials) == len(plan.plan.shards)
    written = output["shards"]["ResultWriterDetails"]
    assert written["Bucket"] == ARTIFACTS and written["Key"].startswith("validation-results/")
    stored = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/dataset-report.json")["Body"].read())
    assert output["dataset"]["value"] == stored
    options = options_from_json(plan.inputs.options)
    whole = validate_dataset(plan.inputs.uris, open_store(plan.inputs.uris[0]), options)
    ignored = {"created_at", "report_uri", "token_stats"}
    assert {k: v for k, v in stored.items() if k not in ignored} == whole.model_dump(mode="json", exclude=ignored)
    assert stored["exact_duplicates"] >= 20 and stored["ok"]
    assert stored["token_stats"]["tokenizer"] == "tiny-llama-test"  # counted in the shards, merged once


def test_a_rejected_dataset_fails_the_merge_with_the_report_location(aws):
    bad = dataset(2, 200) + b'{"messages": [{"role": "user", "content": "no answer"}]}\n'
    run_id, execution = start(aws, {"datasets/support/a.jsonl": bad})
    assert execution["status"] == "SUCCEEDED"  # ValidateFailed stands in for RecordFailure here
    output = json.loads(execution["output"])
    assert output["failed_state"] == "Validate"
    assert output["error"]["Error"] == "DatasetRejected"
    assert f"runs/{run_id}/dataset-report.json" in output["error"]["Cause"]


def _clean_line(rng: random.Random, pool: list[bytes]) -> bytes:
    words = ["the", "order", "shipped", "late", "refund", "account", "invoice", "billing", "plan", "support"]
    record = {
        "messages": [
            {"role": "user", "content": " ".join(rng.choice(words) for _ in range(rng.randint(3, 10)))},
            {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(rng.randint(10, 30)))},
        ]
    }
    line = json.dumps(record).encode() + b"\n"
    pool.append(line)
    return line
