"""The AWS pipeline inside moto: buckets, table, topic, Lambda functions dispatched in-process to the real
handlers, and the real state machine definition executed by moto's Step Functions engine."""

from __future__ import annotations

import json
import re
import time
import traceback
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import ROOT, FakeContext, load_handler

DATA, ARTIFACTS = "tf-data", "tf-artifacts"
ROLE = "arn:aws:iam::123456789012:role/trainforge-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge:test"
FUNCTIONS = {
    "ValidateRunFunctionArn": "validate_run",
    "PrepareTrainingFunctionArn": "prepare_training",
    "ReadEvaluationFunctionArn": "read_evaluation",
    "RegisterModelFunctionArn": "register_model",
    "DeployModelFunctionArn": "deploy_model",
    "RecordFailureFunctionArn": "record_failure",
}


def substitutions(function_arns: dict[str, str], topic_arn: str) -> dict[str, str]:
    return {
        **function_arns,
        "TopicArn": topic_arn,
        "SageMakerRoleArn": ROLE,
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/test",
        "SubnetIds": "subnet-a,subnet-b",
        "SecurityGroupIds": "sg-1",
        "EvaluationInstanceType": "ml.m5.xlarge",
        "MaxTrainingRuntimeSeconds": "86400",
        "MaxTrainingWaitSeconds": "172800",
        "MaxEvaluationRuntimeSeconds": "7200",
    }


def render_definition(values: dict[str, str]) -> str:
    text = (ROOT / "statemachines" / "training_pipeline.asl.json").read_text()
    missing = set(re.findall(r"\$\{(\w+)\}", text)) - set(values)
    assert not missing, missing
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)


def dispatch_lambda(function_name: str, body: Any) -> tuple[bytes, bool]:
    """Run the real handler; an exception comes back as Lambda reports it (errorType = class name)."""
    name = function_name.rsplit(":", 1)[-1]
    handler = load_handler(name)
    try:
        return json.dumps(handler(json.loads(body), FakeContext())).encode(), False
    except Exception as exc:  # surfaced to the state machine as a function error, like Lambda does
        payload = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exc().splitlines()[-5:],
        }
        return json.dumps(payload).encode(), True


class AwsPipeline:
    def __init__(self, monkeypatch: Any, tiny_model_dir: Path) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            payload, failed = dispatch_lambda(function_name, body)
            if failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return payload

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        self.s3 = boto3.client("s3")
        self.sfn = boto3.client("stepfunctions")
        self.sagemaker = boto3.client("sagemaker")
        for bucket in (DATA, ARTIFACTS):
            self.s3.create_bucket(Bucket=bucket)
            self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName="trainforge-runs",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        topic = boto3.client("sns").create_topic(Name="trainforge-runs")["TopicArn"]
        lambda_client = boto3.client("lambda")
        role = boto3.client("iam").create_role(RoleName="lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arns = {}
        for key, name in FUNCTIONS.items():
            arns[key] = lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": b"placeholder"},
            )["FunctionArn"]
        self.state_machine = self.sfn.create_state_machine(
            name="trainforge", roleArn=role, definition=render_definition(substitutions(arns, topic))
        )["stateMachineArn"]
        for key, value in {
            "TRAINFORGE_DATA_URI": f"s3://{DATA}",
            "TRAINFORGE_ARTIFACTS_URI": f"s3://{ARTIFACTS}",
            "TRAINFORGE_TABLE_NAME": "trainforge-runs",
            "TRAINFORGE_STATE_MACHINE_ARN": self.state_machine,
            "TRAINFORGE_IMAGE_URI": IMAGE,
            "TRAINFORGE_SAGEMAKER_ROLE_ARN": ROLE,
        }.items():
            monkeypatch.setenv(key, value)
        for path in tiny_model_dir.iterdir():
            self.s3.upload_file(str(path), ARTIFACTS, f"base-models/tiny-llama-test/{path.name}")

    def put(self, key: str, body: bytes | str) -> str:
        return self.s3.put_object(Bucket=DATA, Key=key, Body=body if isinstance(body, bytes) else body.encode())[
            "VersionId"
        ]

    def fake_training_outputs(self, run_id: str, *, improvement: float) -> None:
        """What the training and processing containers would have written (moto runs no container)."""
        model = f"runs/{run_id}/train/output/{run_id}-0/output/model/"
        lineage = {
            "final_loss": 1.5,
            "best_eval_loss": 1.6,
            "wall_seconds": 12.0,
            "tokens_seen": 4096,
            "hyperparameters": {"learning_rate": 0.001},
        }
        self.s3.put_object(Bucket=ARTIFACTS, Key=model + "trainforge.json", Body=json.dumps(lineage))
        self.s3.put_object(Bucket=ARTIFACTS, Key=model + "config.json", Body=json.dumps({"model_type": "llama"}))
        self.s3.put_object(
            Bucket=ARTIFACTS,
            Key=f"runs/{run_id}/train/checkpoints/metrics.jsonl",
            Body=b'{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n',
        )
        ppl = {
            "name": "perplexity",
            "base": 10.0,
            "tuned": 10.0 * (1 - improvement),
            "delta": improvement,
            "ci_low": improvement - 0.02,
            "ci_high": improvement + 0.02,
            "higher_is_better": False,
        }
        report = {
            "run_id": run_id,
            "base_model": "tiny-llama-test",
            "tuned_model_uri": f"s3://{ARTIFACTS}/{model}",
            "examples": 20,
            "metrics": [ppl],
            "forgetting": None,
        }
        self.s3.put_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/evaluation/report.json", Body=json.dumps(report))

    def wait(self, execution_arn: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            assert time.time() < deadline, "execution did not finish"
            time.sleep(0.2)

    def path(self, execution_arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=self.state_machine)["executions"]
