"""Spec schedules in AWS mode (moto): the sync_schedule function keeps each job's EventBridge Scheduler
schedule in line with the job's current spec, on uploads and on deletes; ``trainforge schedules list``
shows their next fire times. Locally, ``trainforge watch`` keeps and fires the same schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.conftest import FakeContext, load_handler, s3_event
from trainforge.pipeline.schedules import LocalSchedules, aws_schedules

DATA, GROUP = "tf-data", "trainforge-retrain"
RETRAIN = "arn:aws:lambda:us-east-1:123456789012:function:trainforge-retrain"
ROLE = "arn:aws:iam::123456789012:role/scheduler"
SPEC = "name: support\nbase_model: tiny\ndata: {train: datasets/support/}\n"


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=DATA)
        s3.put_bucket_versioning(Bucket=DATA, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("scheduler").create_schedule_group(Name=GROUP)
        for key, value in {
            "TRAINFORGE_DATA_URI": f"s3://{DATA}",
            "TRAINFORGE_SCHEDULE_GROUP": GROUP,
            "TRAINFORGE_SCHEDULER_ROLE_ARN": ROLE,
            "TRAINFORGE_RETRAIN_FUNCTION_ARN": RETRAIN,
        }.items():
            monkeypatch.setenv(key, value)
        yield s3


def upload(s3, body: str, key: str = "jobs/support.yaml") -> dict:
    version = s3.put_object(Bucket=DATA, Key=key, Body=body.encode())["VersionId"]
    return load_handler("sync_schedule")(s3_event(DATA, key, version), FakeContext())


def deleted(s3, key: str = "jobs/support.yaml") -> dict:
    """Delete the object (versioned bucket: a delete marker) and deliver S3's "Object Deleted" event."""
    marker = s3.delete_object(Bucket=DATA, Key=key)["VersionId"]
    event = s3_event(DATA, key, marker)
    event["detail-type"] = "Object Deleted"
    event["detail"]["object"] = {"key": key, "version-id": marker, "sequencer": "00617F0829932A1234"}
    event["detail"]["deletion-type"] = "Delete Marker Created"
    event["detail"]["reason"] = "DeleteObject"
    return load_handler("sync_schedule")(event, FakeContext())


def schedule() -> dict:
    return boto3.client("scheduler").get_schedule(GroupName=GROUP, Name="support-retrain")


def test_a_spec_schedule_is_created_updated_and_deleted_with_the_spec(aws):
    """Given a spec with schedule, when uploaded, the job's schedule exists in the stack's group and targets
    retrain; a changed expression updates it, a re-upload leaves it, deleting the spec deletes it."""
    before = datetime.now(UTC)
    assert upload(aws, SPEC + "schedule: rate(7 days)\n")["schedule"] == "created"
    created = schedule()
    assert created["ScheduleExpression"] == "rate(7 days)" and created["ScheduleExpressionTimezone"] == "UTC"
    assert created["Target"]["Arn"] == RETRAIN and created["Target"]["RoleArn"] == ROLE
    assert json.loads(created["Target"]["Input"]) == {"job": "support"}
    # the upload already started a run: the first scheduled one is a period later, not at once
    assert timedelta(days=7) - timedelta(minutes=1) <= created["StartDate"] - before <= timedelta(days=7)

    assert upload(aws, SPEC + "schedule: rate(7 days)\n# a comment\n")["schedule"] == "unchanged"
    assert upload(aws, SPEC + "schedule: cron(0 3 ? * MON *)\n")["schedule"] == "updated"
    assert schedule()["ScheduleExpression"] == "cron(0 3 ? * MON *)"

    assert deleted(aws) == {
        "job": "support",
        "schedule": "deleted",
        "evaluation_schedule": "absent",
        "reason": "no spec",
    }
    assert boto3.client("scheduler").list_schedules(GroupName=GROUP)["Schedules"] == []


def test_continuous_evaluation_has_its_own_schedule_following_the_spec(aws, monkeypatch):
    """deploy.continuous_evaluation.schedule: NAME-continuous-evaluation in the same group, invoking the
    continuous_evaluation function with the endpoint's name; it follows the spec as the retrain one does."""
    target = "arn:aws:lambda:us-east-1:123456789012:function:trainforge-continuous_evaluation"
    monkeypatch.setenv("TRAINFORGE_CONTINUOUS_EVALUATION_FUNCTION_ARN", target)

    def evaluated(expression: str) -> str:
        return SPEC + f"deploy: {{continuous_evaluation: {{schedule: '{expression}', rollback_on_fail: true}}}}\n"

    assert upload(aws, evaluated("rate(1 day)"))["evaluation_schedule"] == "created"
    scheduler = boto3.client("scheduler")
    created = scheduler.get_schedule(GroupName=GROUP, Name="support-continuous-evaluation")
    assert created["Target"]["Arn"] == target and created["Target"]["RoleArn"] == ROLE
    assert json.loads(created["Target"]["Input"]) == {"endpoint": "support"}
    assert upload(aws, evaluated("cron(0 4 * * ? *)"))["evaluation_schedule"] == "updated"
    (row,) = aws_schedules(GROUP, now=datetime(2026, 12, 1, 10, 30, tzinfo=UTC))
    assert (row.job, row.next_fire) == ("support", datetime(2026, 12, 2, 4, tzinfo=UTC))
    assert upload(aws, SPEC)["evaluation_schedule"] == "deleted"
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []


def test_removing_the_field_deletes_and_an_invalid_spec_keeps_the_schedule(aws):
    upload(aws, SPEC + "schedule: rate(1 day)\n")
    kept = upload(aws, SPEC + "schedule: rate(1 day)\nbogus: 1\n")
    assert kept["schedule"] == "unchanged" and "not a valid job spec" in kept["reason"]
    assert schedule()["ScheduleExpression"] == "rate(1 day)"
    assert upload(aws, SPEC)["schedule"] == "deleted"
    assert upload(aws, SPEC)["schedule"] == "absent"


def test_a_late_event_follows_the_current_spec(aws):
    """Events may arrive late or twice: the schedule follows the spec as it is now, not as the event says."""
    first = aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=(SPEC + "schedule: rate(1 day)\n").encode())
    aws.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=(SPEC + "schedule: rate(2 days)\n").encode())
    load_handler("sync_schedule")(s3_event(DATA, "jobs/support.yaml", first["VersionId"]), FakeContext())
    assert schedule()["ScheduleExpression"] == "rate(2 days)"


def test_schedules_list_shows_next_fire_times(aws):
    upload(aws, SPEC + "schedule: cron(0 3 ? * MON *)\n")
    now = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    (row,) = aws_schedules(GROUP, now=now)
    assert (row.job, row.name, row.next_fire) == ("support", "support-retrain", datetime(2026, 12, 7, 3, tzinfo=UTC))


class Recorder:
    """Stands in for the local runner: records what would run (the runner's own reuse of unchanged runs is
    tested with ``scan`` in test_local_runner)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    def run(self, spec_path: Path, trigger: str = "cli", force: bool = False):
        self.runs.append((spec_path.name, trigger))
        return type("Outcome", (), {"run_id": f"run-{len(self.runs)}"})()


def test_watch_fires_the_spec_schedules_as_aws_would(tmp_path):
    from trainforge.pipeline.watch import fire_schedules

    data_root = tmp_path / "data"
    (data_root / "jobs").mkdir(parents=True)
    spec = data_root / "jobs" / "support.yaml"
    spec.write_text(SPEC + "schedule: rate(1 day)\n")
    schedules, runner = LocalSchedules(tmp_path / "schedules.json"), Recorder()
    start = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert fire_schedules(runner, data_root, schedules, start) == []  # a rate schedule starts a period later
    assert [r.next_fire for r in schedules.rows(start)] == [start + timedelta(days=1)]
    assert fire_schedules(runner, data_root, schedules, start + timedelta(hours=23)) == []
    assert fire_schedules(runner, data_root, schedules, start + timedelta(days=3)) == ["run-1"]  # missed: once
    assert runner.runs == [("support.yaml", "schedule")]
    assert fire_schedules(runner, data_root, schedules, start + timedelta(days=3, hours=1)) == []
    spec.write_text(SPEC + "schedule: rate(1 day)\nbogus: 1\n")  # invalid: kept as it was
    fire_schedules(runner, data_root, schedules, start + timedelta(days=3, hours=2))
    assert [r.expression for r in schedules.rows(start)] == ["rate(1 day)"]
    spec.write_text(SPEC)  # the field removed: the schedule goes
    fire_schedules(runner, data_root, schedules, start + timedelta(days=5))
    assert schedules.rows(start) == [] and len(runner.runs) == 1


def test_schedules_list_locally_shows_what_watch_keeps(tmp_path, capsys):
    from trainforge.cli import main
    from trainforge.pipeline.watch import fire_schedules

    data_root = tmp_path / "ws" / "data"
    (data_root / "jobs").mkdir(parents=True)
    (data_root / "jobs" / "support.yaml").write_text(SPEC + "schedule: cron(0 3 ? * MON *)\n")
    fire_schedules(Recorder(), data_root, LocalSchedules(tmp_path / "ws" / "schedules.json"))
    assert main(["schedules", "list", "--workspace", str(tmp_path / "ws")]) == 0
    shown = capsys.readouterr().out
    assert "support-retrain" in shown and "cron(0 3 ? * MON *)" in shown and " 03:00" in shown
