"""Admission in AWS mode (moto): idempotent under at-least-once delivery, bounded by the invocation's
time, and one run per multi-file upload."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from tests.conftest import FakeContext, chat, load_handler, s3_event
from trainforge.pipeline import handlers

DATA, ARTIFACTS, GROUP = "tf-data", "tf-artifacts", "trainforge-retrain"
SPEC = """name: support
base_model: tiny
data: {train: datasets/support/}
trigger: {on_new_data: true, quiet_minutes: 5}
"""


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (DATA, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName="trainforge-runs",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = boto3.client("stepfunctions").create_state_machine(
            name="trainforge",
            roleArn=role,
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        )["stateMachineArn"]
        boto3.client("scheduler").create_schedule_group(Name=GROUP)
        for key, value in {
            "TRAINFORGE_DATA_URI": f"s3://{DATA}",
            "TRAINFORGE_ARTIFACTS_URI": f"s3://{ARTIFACTS}",
            "TRAINFORGE_TABLE_NAME": "trainforge-runs",
            "TRAINFORGE_STATE_MACHINE_ARN": machine,
            "TRAINFORGE_SCHEDULE_GROUP": GROUP,
            "TRAINFORGE_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
            "TRAINFORGE_RETRAIN_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:retrain",
        }.items():
            monkeypatch.setenv(key, value)
        yield s3


def executions() -> list[dict]:
    sfn = boto3.client("stepfunctions")
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    return sfn.list_executions(stateMachineArn=machine)["executions"]


def test_a_multi_file_upload_starts_one_run_once_it_goes_quiet(aws):
    """Given a job with on_new_data, when three files of one upload arrive, then no run starts per file:
    the job's one-time schedule moves to quiet_minutes after the last, and when it fires, one run trains
    on all three."""
    aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=SPEC.encode())
    handler = load_handler("admit_run")
    for part in range(3):
        version = aws.put_object(
            Bucket=DATA, Key=f"datasets/support/part-{part}.jsonl", Body=json.dumps(chat(f"q{part}", "a")) + "\n"
        )["VersionId"]
        before = datetime.now(UTC)
        result = handler(s3_event(DATA, f"datasets/support/part-{part}.jsonl", version), FakeContext())
        assert result == {"started": [], "duplicates": [], "scheduled": ["support"]}
    assert executions() == []
    schedule = boto3.client("scheduler").get_schedule(GroupName=GROUP, Name="support-new-data")
    fires = datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)
    assert timedelta(minutes=4) < fires - before.replace(microsecond=0) <= timedelta(minutes=5, seconds=2)
    assert json.loads(schedule["Target"]["Input"]) == {"job": "support"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    started = load_handler("retrain")(json.loads(schedule["Target"]["Input"]), FakeContext())  # the schedule fires
    assert started["started"] is True and len(executions()) == 1
    request = json.loads(aws.get_object(Bucket=ARTIFACTS, Key=f"runs/{started['run_id']}/request.json")["Body"].read())
    assert sorted(d["uri"].rsplit("/", 1)[-1] for d in request["datasets"]) == [
        "part-0.jsonl",
        "part-1.jsonl",
        "part-2.jsonl",
    ]


def test_a_job_without_on_new_data_is_not_scheduled_by_uploads(aws):
    aws.put_object(
        Bucket=DATA, Key="jobs/support.yaml", Body=SPEC.replace("on_new_data: true", "on_new_data: false").encode()
    )
    version = aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=json.dumps(chat()) + "\n")["VersionId"]
    result = load_handler("admit_run")(s3_event(DATA, "datasets/support/a.jsonl", version), FakeContext())
    assert result["scheduled"] == [] and boto3.client("scheduler").list_schedules(GroupName=GROUP)["Schedules"] == []


def test_an_admission_in_progress_expires_with_the_invocation(aws, monkeypatch):
    """The idempotency record of an admission in progress carries the invocation's deadline: had Lambda
    killed it at its timeout, EventBridge's retry could admit after that instead of after 7 days."""
    aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=json.dumps(chat()) + "\n")
    version = aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=SPEC.encode())["VersionId"]
    seen: list[dict] = []
    original = handlers.handle_admit

    def observe(*args, **kwargs):
        seen.extend(boto3.client("dynamodb").scan(TableName="trainforge-runs")["Items"])
        return original(*args, **kwargs)

    monkeypatch.setattr(handlers, "handle_admit", observe)
    started = time.time()
    result = load_handler("admit_run")(s3_event(DATA, "jobs/support.yaml", version), FakeContext())
    assert len(result["started"]) == 1
    (record,) = seen
    assert record["status"]["S"] == "INPROGRESS"
    deadline = int(record["in_progress_expiration"]["N"]) / 1000
    assert started + 55 <= deadline <= time.time() + 61  # FakeContext has 60 s left


def test_duplicate_events_start_one_execution_and_a_new_version_starts_another(aws):
    """EventBridge delivers at least once: a hundred copies of one upload's event, shuffled, start one
    execution (idempotency record, then the execution name); a new version of the spec starts another."""
    import random

    aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=json.dumps(chat()) + "\n")
    spec = SPEC.replace("on_new_data: true", "on_new_data: false")
    first = aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=spec.encode())["VersionId"]
    handler = load_handler("admit_run")
    events = [s3_event(DATA, "jobs/support.yaml", first) for _ in range(100)]
    random.Random(7).shuffle(events)
    for event in events:
        handler(event, FakeContext())
    assert len(executions()) == 1
    second = aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=(spec + "# v2\n").encode())["VersionId"]
    handler(s3_event(DATA, "jobs/support.yaml", second), FakeContext())
    assert len(executions()) == 2


def test_retrain_starts_a_run_only_when_the_data_content_changed(aws):
    from trainforge.pipeline.layout import latest_success_uri

    rows = json.dumps(chat()) + "\n"
    aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=rows)
    aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=SPEC.encode())
    retrain = load_handler("retrain")
    first = retrain({"job": "support"}, FakeContext())
    assert first["started"] is True
    # the run succeeded: what register_model records for the job
    fingerprint = handlers.content_fingerprint([hashlib.sha256(rows.encode()).hexdigest()])
    latest = latest_success_uri(f"s3://{ARTIFACTS}", "support").removeprefix(f"s3://{ARTIFACTS}/")
    aws.put_object(
        Bucket=ARTIFACTS, Key=latest, Body=json.dumps({"run_id": first["run_id"], "fingerprint": fingerprint})
    )
    assert retrain({"job": "support"}, FakeContext()) == {
        "started": False,
        "reason": "data unchanged since the last successful run",
    }
    aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=rows)  # a new version, the same bytes
    assert retrain({"job": "support"}, FakeContext())["started"] is False
    aws.put_object(Bucket=DATA, Key="datasets/support/a.jsonl", Body=rows + json.dumps(chat("one more", "row")) + "\n")
    changed = retrain({"job": "support"}, FakeContext())
    assert changed["started"] is True and changed["run_id"] != first["run_id"] and len(executions()) == 2
