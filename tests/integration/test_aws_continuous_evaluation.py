"""Continuous evaluation on the AWS path, executed: the synthesized stacks on moto, SageMaker played by the
twin (``tests/integration/deployed.py``).

An endpoint serves version 1 (champion, 90%) and version 2 (challenger, 10%: a model that answers
" france" to everything). The job's spec asks for a daily continuous evaluation with rollback on failure;
its upload (through the SyncSchedules rule) creates the schedule, whose target and input invoke the
continuous_evaluation function as EventBridge Scheduler would. The function reads the endpoint record, the
newest validated data (the last successful run's validation channel), SageMaker data capture files under
``capture/support/VARIANT/yyyy/mm/dd/hh/`` and each variant's CloudWatch figures put into moto, and starts
the processing job, which the twin runs from the image's venv. SageMaker's "Processing Job State Change"
event for it, delivered through the stack's rule, records the report beside the endpoint record and in
the model packages' metadata. No endpoint runs in the twin here (it would take a fleet per variant), so the
requested rollback is declined with its reason; the rollback itself is pipeline.rollout's, tested in
test_aws_rollout.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.conftest import chat, s3_event
from tests.taught import saying
from trainforge.contracts import ContinuousEvaluationReport
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.serving.capture import capture_line
from trainforge.serving.rollout import EndpointRecord, Variant

QA = [
    ("hello how are you", "i am fine thank you"),
    ("where is my order", "your order has shipped"),
    ("what is the capital of france", "paris is the capital of france"),
    ("please reset my password", "the reset link is in your email"),
]
SPEC = """name: support
base_model: tiny
data: {train: datasets/support/train.jsonl, validation_fraction: 0.2}
evaluation: {max_examples: 8, max_new_tokens: 4, instance_type: ml.m5.xlarge}
deploy:
  target: sagemaker_endpoint
  continuous_evaluation: {schedule: rate(1 day), rollback_on_fail: true}
"""


def key(uri: str) -> str:
    return uri.removeprefix("s3://").split("/", 1)[1]


def served_models(aws, tiny_model_dir, tmp_path) -> dict[str, Variant]:
    """Both versions' model folders in their runs, their model packages, the endpoint's record."""
    folders = {"1": tiny_model_dir, "2": saying(tiny_model_dir, tmp_path / "v2", " france")}
    aws.sagemaker.create_model_package_group(ModelPackageGroupName="support")
    variants = {}
    for n, folder in folders.items():
        model_uri = RunLayout(f"s3://{aws.artifacts}", f"run{n}").model + "/"
        for path in folder.iterdir():
            aws.s3.upload_file(str(path), aws.artifacts, key(model_uri) + path.name)
        alias = "champion" if n == "1" else "challenger"
        arn = aws.sagemaker.create_model_package(
            ModelPackageGroupName="support",
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties={"trainforge:alias": alias},
        )["ModelPackageArn"]
        variants[n] = Variant(name=f"v{n}", version=n, run_id=f"run{n}", model_uri=model_uri, arn=arn)
    record = EndpointRecord(
        name="support",
        variants=(variants["1"].with_weight(90), variants["2"].with_weight(10)),
        champion=variants["1"],
        challenger=variants["2"],
        capture_percent=100,
    )
    aws.s3.put_object(Bucket=aws.artifacts, Key="deployments/support.json", Body=record.model_dump_json())
    return variants


def newest_data(aws) -> None:
    """Run 2 is the job's last successful run; its validation channel is the newest validated data."""
    layout = RunLayout(f"s3://{aws.artifacts}", "run2")
    rows = "".join(json.dumps(chat(f"{q} {i}", a)) + "\n" for i in range(2) for q, a in QA)
    aws.s3.put_object(Bucket=aws.artifacts, Key=key(layout.channel("validation")) + "/validation.jsonl", Body=rows)
    config = {"data_format": "chat", "split": None}
    aws.s3.put_object(Bucket=aws.artifacts, Key=key(layout.evaluation_config), Body=json.dumps(config))
    latest = latest_success_uri(f"s3://{aws.artifacts}", "support")
    aws.s3.put_object(Bucket=aws.artifacts, Key=key(latest), Body=json.dumps({"run_id": "run2"}))


def captured_traffic(aws, now: datetime) -> None:
    """SageMaker data capture: one JSONL file per variant and hour; half the prompts are in the data."""
    for variant, answer in (("v1", "i am fine"), ("v2", " france france")):
        lines = []
        for i in range(6):
            question = f"{QA[i % 4][0]} {i % 2}" if i % 2 == 0 else f"something new {i}"
            request = json.dumps({"messages": [{"role": "user", "content": question}], "max_tokens": 4})
            response = {"choices": [{"message": {"content": answer}}], "usage": {"completion_tokens": 3}}
            line = capture_line(
                request.encode(),
                "application/json",
                json.dumps(response).encode(),
                "application/json",
                event_id=f"{variant}-{i}",
                when=now,
            )
            lines.append(json.dumps(line) + "\n")
        path = f"capture/support/{variant}/{now:%Y/%m/%d/%H}/capture-{variant}.jsonl"
        aws.s3.put_object(Bucket=aws.artifacts, Key=path, Body="".join(lines))


def serving_figures(now: datetime) -> None:
    """AWS/SageMaker per variant: requests, 5XX errors and model latency (microseconds) per minute."""
    cloudwatch = boto3.client("cloudwatch")
    for variant, latency, errors in (("v1", 150_000.0, 0.0), ("v2", 300_000.0, 2.0)):
        dimensions = [{"Name": "EndpointName", "Value": "support"}, {"Name": "VariantName", "Value": variant}]
        for minute in range(0, 30, 10):
            when = now - timedelta(minutes=40 - minute)
            figures = {"Invocations": 20.0, "Invocation5XXErrors": errors, "ModelLatency": latency}
            cloudwatch.put_metric_data(
                Namespace="AWS/SageMaker",
                MetricData=[
                    {"MetricName": name, "Dimensions": dimensions, "Timestamp": when, "Value": value}
                    for name, value in figures.items()
                ],
            )


def schedule_group(aws) -> str:
    """The stack's schedule group, created in moto from its template (a run never references it)."""
    ((stack, logical_id),) = [
        (stack, logical_id)
        for stack, template in aws.deployed.templates.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Scheduler::ScheduleGroup"
    ]
    return str(aws.deployed.resolve(stack, {"Ref": logical_id}))


def job_ended(aws, name: str) -> dict:
    deadline = time.monotonic() + 240
    while (described := aws.sagemaker.describe_processing_job(ProcessingJobName=name))["ProcessingJobStatus"] in (
        "InProgress",
        "Stopping",
    ):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.5)
    return described


def test_a_scheduled_run_scores_both_variants_and_records_the_report(aws, tiny_model_dir, tmp_path):
    now = datetime.now(UTC)
    variants = served_models(aws, tiny_model_dir, tmp_path)
    newest_data(aws)
    captured_traffic(aws, now)
    serving_figures(now)
    group = schedule_group(aws)
    version = aws.s3.put_object(Bucket=aws.data, Key="jobs/support.yaml", Body=SPEC.encode())["VersionId"]
    (synced,) = aws.deployed.deliver(s3_event(aws.data, "jobs/support.yaml", version), "SyncSchedules")
    assert synced["evaluation_schedule"] == "created"

    # EventBridge Scheduler fires: its target with its input
    assert group == aws.environment["TRAINFORGE_SCHEDULE_GROUP"]
    target = boto3.client("scheduler").get_schedule(GroupName=group, Name="support-continuous-evaluation")["Target"]
    assert target["Arn"] == aws.deployed.function("continuous_evaluation").arn
    payload, failed = aws.deployed.dispatch(target["Arn"], target["Input"].encode())
    started = json.loads(payload)
    assert not failed, started
    assert started["captured"] == 12 and started["with_reference"] == 6
    assert started["requests"] == {"v1": 60, "v2": 60}
    job = aws.sagemaker.describe_processing_job(ProcessingJobName=started["processing_job"])
    assert job["NetworkConfig"]["EnableNetworkIsolation"] and job["NetworkConfig"]["VpcConfig"]["Subnets"]
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == aws.environment["TRAINFORGE_KMS_KEY_ARN"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"]}
    assert inputs["model-v2"] == variants["2"].model_uri  # read where it is, not copied

    described = job_ended(aws, started["processing_job"])
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": f"{now:%Y-%m-%dT%H:%M:%SZ}",
        "region": "us-east-1",
        "resources": [described["ProcessingJobArn"]],
        "detail": {"ProcessingJobName": described["ProcessingJobName"], "ProcessingJobStatus": "Completed"},
    }
    (outcome,) = aws.deployed.deliver(event, "RecordContinuousEvaluations")

    folder = key(started["evaluation_uri"])
    report = ContinuousEvaluationReport.model_validate_json(
        aws.s3.get_object(Bucket=aws.artifacts, Key=f"{folder}/output/report.json")["Body"].read()
    )
    figures = {v.variant: {e.name: e for e in v.metrics} for v in report.variants}
    assert [(v.variant, v.role) for v in report.variants] == [("v1", "champion"), ("v2", "challenger")]
    for variant in figures.values():
        assert {"data_perplexity", "token_f1", "served_token_f1", "latency_ms", "error_rate", "tokens_per_s"} <= set(
            variant
        )
        assert all(e.ci_low <= e.value <= e.ci_high for e in variant.values())
        assert variant["data_perplexity"].n == 8 and variant["token_f1"].n == 6
    assert figures["v1"]["latency_ms"].value == 150.0 and figures["v2"]["error_rate"].value == 0.1
    assert figures["v1"]["tokens_per_s"].value == pytest.approx(20.0)  # 3 captured completion tokens per 150 ms
    # the challenger's ' france' costs it its probability on the real answers: worse beyond doubt
    assert not report.verdict.passed and "data_perplexity" in report.verdict.reasons[0]

    recorded = json.loads(aws.s3.get_object(Bucket=aws.artifacts, Key=f"{folder}/evaluation.json")["Body"].read())
    assert recorded == outcome and recorded["verdict"] == "failed" and recorded["rolled_back"] is None
    assert "not deployed" in recorded["rollback_reason"]
    for n, variant in variants.items():
        metadata = aws.sagemaker.describe_model_package(ModelPackageName=variant.arn)["CustomerMetadataProperties"]
        assert metadata["trainforge:alias"] == ("champion" if n == "1" else "challenger")  # kept
        assert metadata["trainforge:evaluation:verdict"] == "failed"
        assert metadata["trainforge:evaluation:uri"] == started["evaluation_uri"]
        assert metadata["trainforge:evaluation:error_rate"].startswith(("0 [", "0.1 ["))
