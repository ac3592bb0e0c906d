"""The state machine definition: valid ASL, secure SageMaker requests, disciplined retries and catches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.aws_pipeline import FUNCTIONS, render_definition, substitutions
from trainforge.pipeline.local_runner import SUCCESS_PATH

ASL = json.loads((ROOT / "statemachines" / "training_pipeline.asl.json").read_text())
STATES = ASL["States"]
JOBS = {
    name: s
    for name, s in STATES.items()
    if s.get("Resource", "").endswith(("createTrainingJob", "createProcessingJob"))
}


def test_statelint_reports_no_errors(tmp_path):
    arns = {key: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for key, name in FUNCTIONS.items()}
    rendered = tmp_path / "pipeline.json"
    rendered.write_text(render_definition(substitutions(arns, "arn:aws:sns:us-east-1:123456789012:runs")))
    statelint = Path(sys.executable).parent / "statelint"
    result = subprocess.run([str(statelint), str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_training_and_processing_requests():
    assert {s["Resource"].rsplit(":", 1)[-1] for s in JOBS.values()} == {"createTrainingJob", "createProcessingJob"}
    assert len(JOBS) == 3  # on-demand training, spot training, evaluation


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_job_request_is_isolated_encrypted_and_bounded(name):
    p = JOBS[name]["Parameters"]
    if "AlgorithmSpecification" in p:  # CreateTrainingJob
        assert p["EnableNetworkIsolation"] is True and p["EnableInterContainerTrafficEncryption"] is True
        vpc = p["VpcConfig"]
        assert (
            p["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyArn}"
            and p["ResourceConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
        )
        assert "${MaxTrainingRuntimeSeconds}" in p["StoppingCondition"]["MaxRuntimeInSeconds.$"]
        assert p["RoleArn"] == "${SageMakerRoleArn}"
    else:  # CreateProcessingJob
        network = p["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True and network["EnableInterContainerTrafficEncryption"] is True
        vpc = network["VpcConfig"]
        assert p["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyArn}"
        assert p["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
        assert "${MaxEvaluationRuntimeSeconds}" in p["StoppingCondition"]["MaxRuntimeInSeconds.$"]
    assert "${SubnetIds}" in vpc["Subnets.$"] and "${SecurityGroupIds}" in vpc["SecurityGroupIds.$"]


def test_job_names_are_unique_per_attempt_and_fit_63_characters():
    longest_run_id = "a" * 40 + "-" + "f" * 12  # job name limit 40 + '-' + 12 hex digits
    for state in JOBS.values():
        name_expr = state["Parameters"].get("TrainingJobName.$") or state["Parameters"]["ProcessingJobName.$"]
        assert "$$.State.RetryCount" in name_expr and "$.run.run_id" in name_expr
        literal = name_expr.split("'")[1]  # the States.Format template
        assert len(literal.replace("{}", longest_run_id, 1).replace("{}", "99")) <= 63


def test_every_task_has_a_timeout_transient_retries_and_a_catch():
    for name, state in STATES.items():
        if state["Type"] != "Task":
            continue
        assert state.get("TimeoutSeconds"), name
        for retry in state.get("Retry", []):
            assert "States.ALL" not in retry["ErrorEquals"] and "States.TaskFailed" not in retry["ErrorEquals"], name
            assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] > 0, name
        if name.startswith(("Notify", "RecordFailure")):
            continue  # the failure path itself must not loop into itself
        catcher = state["Catch"][0]
        assert catcher["ErrorEquals"] == ["States.ALL"] and catcher["ResultPath"] == "$.error", name
        marker = STATES[catcher["Next"]]
        assert marker["Type"] == "Pass" and marker["Next"] == "RecordFailure", name


def _success_path() -> list[str]:
    """Walk from StartAt taking the success branch of each Choice, skipping polling loops."""
    success_choice = {
        "SpotOrOnDemand": "StartTraining",
        "TrainingStatus": "StartEvaluation",
        "EvaluationStatus": "ReadEvaluation",
        "Gate": "Register",
        "DeployTarget": "Deploy",
    }
    path, name = [], ASL["StartAt"]
    while STATES[name]["Type"] not in ("Succeed", "Fail"):
        state = STATES[name]
        if state["Type"] == "Task":
            path.append(name)
        name = success_choice[name] if state["Type"] == "Choice" else state["Next"]
    return path


def test_success_path_is_the_local_runners():
    assert _success_path() == list(SUCCESS_PATH)
    choices = {c["Next"] for c in STATES["Gate"]["Choices"]}
    assert choices == {"Register"} and STATES["Gate"]["Default"] == "RegisterRejected"
