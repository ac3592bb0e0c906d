"""What the stacks give the operation of a deployed model: the rule that keeps each job's schedule in line
with its spec on uploads and deletes, the rollout functions' permissions, and the endpoints' data capture."""

from __future__ import annotations

import json

from moto.events.models import EventPattern

from tests.infra.policies import actions, allowed, resources, role_statements, text
from tests.infra.test_iam import function_statements, functions


def s3_event(kind: str, key: str, **detail: str) -> dict:
    return {
        "source": "aws.s3",
        "detail-type": kind,
        "detail": {"bucket": {"name": "data"}, "object": {"key": key, "version-id": "v1"}, **detail},
    }


def test_the_schedule_rule_sees_spec_uploads_and_both_kinds_of_delete(synthesized):
    """S3 sends "Object Deleted" for a delete marker (a plain DELETE on the versioned data bucket) and for a
    permanently deleted version; the rule takes both, and only under jobs/."""
    rules = resources(synthesized, "pipeline", "AWS::Events::Rule")
    (rule,) = [r for logical_id, r in rules.items() if logical_id.startswith("SyncSchedules")]
    pattern = rule["Properties"]["EventPattern"] | {}
    pattern["detail"] = {**pattern["detail"], "bucket": {"name": ["data"]}}
    matcher = EventPattern.load(json.dumps(pattern))
    assert matcher.matches_event(s3_event("Object Created", "jobs/support.yaml", reason="PutObject"))
    for deletion in ("Delete Marker Created", "Permanently Deleted"):
        assert matcher.matches_event(s3_event("Object Deleted", "jobs/support.yaml", **{"deletion-type": deletion}))
    assert not matcher.matches_event(s3_event("Object Deleted", "datasets/support/a.jsonl"))
    assert "SyncScheduleFunction" in text(rule["Properties"]["Targets"])


def test_sync_schedule_manages_schedules_in_the_stacks_group_only(synthesized):
    statements = function_statements(synthesized, "sync_schedule")
    (schedules,) = allowed(statements, "scheduler:DeleteSchedule")
    assert set(actions(schedules)) == {
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:GetSchedule",
        "scheduler:DeleteSchedule",
    }
    assert "RetrainSchedules" in text(schedules["Resource"])
    (pass_role,) = allowed(statements, "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_check_parity_may_ask_the_staged_variant_and_move_traffic(synthesized):
    statements = function_statements(synthesized, "check_parity")
    for action in ("InvokeEndpoint", "UpdateEndpointWeightsAndCapacities", "UpdateEndpoint", "DeleteEndpoint"):
        assert allowed(statements, f"sagemaker:{action}"), action
    (aliases,) = allowed(statements, "sagemaker:UpdateModelPackage")
    assert aliases["Resource"].endswith(":model-package/*")
    assert "deployments/*" in text(allowed(statements, "s3:PutObject"))


def test_only_check_parity_creates_alarms_and_only_the_stacks_own(synthesized):
    """A canary's release puts rollback alarms on its variant; their names start with the stack's prefix."""
    (alarms,) = allowed(function_statements(synthesized, "check_parity"), "cloudwatch:PutMetricAlarm")
    assert set(actions(alarms)) == {"cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"}
    assert text(alarms["Resource"]).endswith(':alarm:trainforge-*"')
    for name in ("deploy_model", "rollout", "record_outcome"):
        assert not allowed(function_statements(synthesized, name), "cloudwatch:PutMetricAlarm"), name
    assert functions(synthesized)["check_parity"]["Environment"]["Variables"]["TRAINFORGE_ALARM_PREFIX"] == "trainforge"


def test_the_rollout_function_is_named_and_creates_no_models(synthesized):
    statements = function_statements(synthesized, "rollout")
    assert allowed(statements, "sagemaker:UpdateEndpointWeightsAndCapacities")
    assert not allowed(statements, "sagemaker:CreateModel") and not allowed(statements, "iam:PassRole")
    assert not allowed(statements, "sagemaker:InvokeEndpoint") and not allowed(statements, "sagemaker:DeleteEndpoint")
    name = functions(synthesized)["rollout"]["FunctionName"]
    assert text(name).endswith('-rollout"]]}') or text(name).endswith('-rollout"')


def test_endpoints_may_write_their_capture(synthesized):
    statements = role_statements(synthesized, "training", "SageMakerRole")
    assert "capture/*" in text(allowed(statements, "s3:PutObject"))
