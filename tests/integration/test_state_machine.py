"""The real state machine, executed by moto's Step Functions engine, with the real handlers in-process."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from moto import mock_aws

from tests.conftest import FakeContext, chat, load_handler, s3_event
from tests.integration.aws_pipeline import ARTIFACTS, DATA, AwsPipeline
from trainforge.pipeline.admission import admit
from trainforge.pipeline.local_runner import SUCCESS_PATH

DEPLOYING = """name: support
base_model: tiny
method: lora
data: {train: datasets/support/train.jsonl, validation_fraction: 0.2}
hyperparameters: {max_steps: 10, batch_size: 4, max_seq_len: 64}
compute: {instance_type: ml.g5.2xlarge, spot: false}
evaluation: {min_improvement: 0.05, max_forgetting: 0.05}
deploy: {target: sagemaker_endpoint, approval: auto, instance_type: ml.g4dn.xlarge}
"""
SPEC = DEPLOYING.replace(
    "deploy: {target: sagemaker_endpoint, approval: auto, instance_type: ml.g4dn.xlarge}",
    "deploy: {target: none, approval: auto}",
)
GOOD_DATA = "".join(json.dumps(chat(f"question {i}", f"answer {i}")) + "\n" for i in range(30))


@pytest.fixture
def aws(aws_env, monkeypatch, tiny_model_dir):
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield AwsPipeline(monkeypatch, tiny_model_dir)


def upload_and_start(
    aws: AwsPipeline, data: str = GOOD_DATA, spec: str = SPEC, improvement: float | None = 0.2
) -> tuple[str, dict]:
    aws.put("datasets/support/train.jsonl", data)
    version = aws.put("jobs/support.yaml", spec)
    run_id = admit(
        f"s3://{DATA}/jobs/support.yaml", spec.encode(), version, f"s3://{DATA}", f"s3://{ARTIFACTS}", "upload"
    )[0].run_id
    if improvement is not None:
        aws.fake_training_outputs(run_id, improvement=improvement)
    result = load_handler("admit_run")(s3_event(DATA, "jobs/support.yaml", version), FakeContext())
    assert result["started"] == [run_id]
    execution = aws.executions()[0]
    return run_id, aws.wait(execution["executionArn"]) | {"path": aws.path(execution["executionArn"])}


def test_success_path_registers_an_approved_model_package_and_deploys(aws):
    run_id, execution = upload_and_start(aws, spec=DEPLOYING)
    assert execution["status"] == "SUCCEEDED", execution
    packages = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    assert [p["ModelApprovalStatus"] for p in packages] == ["Approved"]
    package = aws.sagemaker.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    assert package["CustomerMetadataProperties"]["run_id"] == run_id
    assert (
        package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        == f"s3://{ARTIFACTS}/runs/{run_id}/evaluation/report.json"
    )
    training_job = aws.sagemaker.describe_training_job(TrainingJobName=f"{run_id}-0")
    assert training_job["EnableNetworkIsolation"] is True
    bom = json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/bom.json")["Body"].read())
    assert bom["run_id"] == run_id and bom["replay"].startswith("trainforge run")
    assert [d["sha256"] for d in bom["datasets"]] == [hashlib.sha256(GOOD_DATA.encode()).hexdigest()]
    assert aws.sagemaker.describe_endpoint(EndpointName="support")["EndpointConfigName"] == f"support-v1-{run_id}"
    # the local runner passes the same Task states, in the same order (tests/integration/test_local_runner.py)
    tasks = [state for state in execution["path"] if state in SUCCESS_PATH]
    assert tasks == list(SUCCESS_PATH)


def test_rejected_dataset_ends_in_failure_with_the_report_location(aws):
    bad = GOOD_DATA + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n"
    run_id, execution = upload_and_start(aws, data=bad, improvement=None)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "DatasetRejected"
    report_uri = f"s3://{ARTIFACTS}/runs/{run_id}/dataset-report.json"
    assert report_uri in execution["cause"]
    failure = json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/failure.json")["Body"].read())
    assert (failure["state"], failure["error"], failure["report_uri"]) == ("Validate", "DatasetRejected", report_uri)
    assert "RecordFailure" in execution["path"] and "StartTraining" not in execution["path"]
    report = json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/dataset-report.json")["Body"].read())
    assert report["errors"][0]["line"] == 31


def test_failed_training_job_is_recorded(aws, monkeypatch):
    from moto.sagemaker import models

    original = models.FakeTrainingJob.__init__

    def failing(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.training_job_status = "Failed"

    monkeypatch.setattr(models.FakeTrainingJob, "__init__", failing)
    run_id, execution = upload_and_start(aws, improvement=None)
    assert execution["status"] == "FAILED" and execution["error"] == "TrainingFailed"
    failure = json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"runs/{run_id}/failure.json")["Body"].read())
    assert failure["state"] == "DescribeTraining" and failure["log_uris"] == [
        f"cloudwatch:/aws/sagemaker/TrainingJobs/{run_id}-0"
    ]
    assert aws.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_gate_failure_registers_nothing_as_approved(aws):
    _run_id, execution = upload_and_start(aws, improvement=0.01)
    assert execution["status"] == "FAILED" and execution["error"] == "GateFailed"
    packages = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    assert [p["ModelApprovalStatus"] for p in packages] == ["Rejected"]
    assert "Deploy" not in execution["path"] and "NotifyRejected" in execution["path"]


def test_duplicate_events_start_one_execution_and_a_new_version_starts_another(aws):
    aws.put("datasets/support/train.jsonl", GOOD_DATA)
    first = aws.put("jobs/support.yaml", SPEC)
    handler = load_handler("admit_run")
    events = [s3_event(DATA, "jobs/support.yaml", first) for _ in range(100)]
    random.Random(7).shuffle(events)
    for event in events:
        handler(event, FakeContext())
    assert len(aws.executions()) == 1
    second = aws.put("jobs/support.yaml", SPEC + "# a new version of the same spec\n")
    handler(s3_event(DATA, "jobs/support.yaml", second), FakeContext())
    assert len(aws.executions()) == 2


def test_dataset_upload_starts_jobs_with_on_new_data(aws):
    aws.put("jobs/support.yaml", SPEC + "trigger: {on_new_data: true}\n")
    aws.put("jobs/other.yaml", SPEC.replace("name: support", "name: other"))  # does not opt in
    version = aws.put("datasets/support/train.jsonl", GOOD_DATA)
    result = load_handler("admit_run")(s3_event(DATA, "datasets/support/train.jsonl", version), FakeContext())
    assert len(result["started"]) == 1 and result["started"][0].startswith("support-")


def test_retrain_starts_a_run_only_when_the_data_content_changed(aws):
    run_id, execution = upload_and_start(aws, spec=SPEC + "schedule: rate(7 days)\n")
    assert execution["status"] == "SUCCEEDED"
    retrain = load_handler("retrain")
    unchanged = retrain({"job": "support"}, FakeContext())
    assert unchanged == {"started": False, "reason": "data unchanged since the last successful run"}
    aws.put("datasets/support/train.jsonl", GOOD_DATA)  # a new version with the same bytes is still unchanged
    assert retrain({"job": "support"}, FakeContext())["started"] is False
    aws.put("datasets/support/train.jsonl", GOOD_DATA + json.dumps(chat("one more", "row")) + "\n")
    changed = retrain({"job": "support"}, FakeContext())
    assert changed["started"] is True and changed["run_id"] != run_id
    assert len(aws.executions()) == 2
