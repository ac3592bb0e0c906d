"""The release wait's Choice, executed by moto's Step Functions engine (the states as the definition has
them, the states they lead to replaced by markers): a canary that SageMaker rolled back to the former
configuration ends the run with CanaryRolledBack, not in RecordOutcome."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.test_asl import STATES

ROLE = "arn:aws:iam::123456789012:role/sfn"


def reached(name: str) -> dict[str, Any]:
    return {"Type": "Pass", "Result": name, "ResultPath": "$.reached", "End": True}


def release(deployment: dict[str, Any], endpoint: dict[str, Any]) -> dict[str, Any]:
    """The output of ReleaseStatus (and ReleaseRolledBack) on this state."""
    states = {
        "ReleaseStatus": STATES["ReleaseStatus"],
        "ReleaseRolledBack": STATES["ReleaseRolledBack"],
        **{name: reached(name) for name in ("RecordOutcome", "ReleaseFailed", "CountReleasePoll", "CheckParityFailed")},
    }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="release", definition=json.dumps({"StartAt": "ReleaseStatus", "States": states}), roleArn=ROLE
        )["stateMachineArn"]
        run = sfn.start_execution(
            stateMachineArn=machine, input=json.dumps({"deployment": {"value": deployment}, "endpoint": endpoint})
        )["executionArn"]
        while (described := sfn.describe_execution(executionArn=run))["status"] == "RUNNING":
            time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


ENDPOINT = {"EndpointName": "support", "EndpointStatus": "InService", "EndpointConfigName": "support-v1-v2-aaaa"}


@pytest.mark.parametrize(
    ("endpoint_config", "reaches"),
    [
        ("support-v1-v2-aaaa", "RecordOutcome"),  # the canary's configuration serves: released
        (None, "RecordOutcome"),  # not a canary (weights moved in place): nothing to compare
        ("support-v1-v2-bbbb", "CheckParityFailed"),  # back on the former configuration: rolled back
    ],
)
def test_a_canary_rolled_back_by_its_alarms_fails_the_run(endpoint_config, reaches):
    output = release({"endpoint_name": "support", "endpoint_config": endpoint_config}, ENDPOINT)
    assert output["reached"] == reaches
    if reaches == "CheckParityFailed":
        assert output["error"]["Error"] == "CanaryRolledBack"
        assert output["error"]["Cause"] == (
            "endpoint support is InService on support-v1-v2-aaaa again, not on the canary configuration "
            "support-v1-v2-bbbb: its rollback alarms fired"
        )


def test_an_endpoint_still_updating_keeps_waiting():
    output = release({"endpoint_name": "support", "endpoint_config": "x"}, {**ENDPOINT, "EndpointStatus": "Updating"})
    assert output["reached"] == "CountReleasePoll"
