"""The state machine definition: valid ASL, requests passed through from the one place that builds them,
disciplined retries and catches, bounded waits, and a history that cannot outgrow Step Functions' limit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from trainforge.pipeline.local_runner import SUCCESS_PATH
from trainforge.tuning.amt import tuning_job_name

ASL_TEXT = (ROOT / "statemachines" / "training_pipeline.asl.json").read_text()
ASL = json.loads(ASL_TEXT)
STATES = ASL["States"]
JOBS = {name: s for name, s in STATES.items() if s.get("Resource", "").startswith("arn:aws:states:::sagemaker:")}
#: Standard workflows fail (uncatchably) past 25,000 history events
#: (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html)
HISTORY_LIMIT = 25_000
SUBSTITUTIONS = {
    "PlanValidationFunctionArn",
    "ValidateShardFunctionArn",
    "MergeValidationFunctionArn",
    "PlanRunFunctionArn",
    "ArtifactsBucketName",
    "PrepareTrainingFunctionArn",
    "PrepareEvaluationFunctionArn",
    "PrepareRefitFunctionArn",
    "ReadEvaluationFunctionArn",
    "RegisterModelFunctionArn",
    "DeployModelFunctionArn",
    "CheckParityFunctionArn",
    "RecordFailureFunctionArn",
    "RecordOutcomeFunctionArn",
    "TopicArn",
}


def test_statelint_reports_no_errors(tmp_path):
    """statelint 3.1.0 (the newest) predates ItemReader's ReaderConfig.InputType, which AWS requires for a
    JSON manifest read from S3: it lints a copy without it, and the field is checked here."""
    reader = STATES["ValidateShards"]["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject" and reader["ReaderConfig"] == {"InputType": "JSON"}
    text = re.sub(r"\$\{(\w+)\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m.group(1)}", ASL_TEXT)
    definition = json.loads(text)
    del definition["States"]["ValidateShards"]["ItemReader"]["ReaderConfig"]
    rendered = tmp_path / "pipeline.json"
    rendered.write_text(json.dumps(definition))
    statelint = Path(sys.executable).parent / "statelint"
    result = subprocess.run([str(statelint), str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_only_substitutions_are_the_functions_the_topic_and_the_bucket():
    """Roles, keys, subnets, images and runtimes live in the requests the Prepare functions build."""
    assert set(re.findall(r"\$\{(\w+)\}", ASL_TEXT)) == SUBSTITUTIONS


def test_jobs_run_as_sync_integrations_with_the_prepared_request_passed_whole():
    assert {s["Resource"] for s in JOBS.values()} == {
        "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync",
        "arn:aws:states:::sagemaker:createProcessingJob.sync",
    }
    for name, state in JOBS.items():
        source = state["TimeoutSecondsPath"].removesuffix(".timeout_seconds") + ".job"
        for key, value in state["Parameters"].items():
            assert key.endswith(".$"), (name, key)  # nothing decided here
            if not key.endswith("JobName.$"):
                assert value == f"{source}.{key.removesuffix('.$')}", (name, key)


def test_job_names_are_unique_per_attempt_and_fit_63_characters():
    longest_run_id = "a" * 40 + "-" + "f" * 12  # job name limit 40 + '-' + 12 hex digits
    for state in JOBS.values():
        parameters = state["Parameters"]
        name_expr = next(parameters[key] for key in parameters if key.endswith("JobName.$"))
        assert "$$.State.RetryCount" in name_expr
        assert len(longest_run_id + "-eval" + "-99") <= 63
    # a tuning job's name is cut to leave its retry suffix room in 32 characters (trainforge.tuning.amt)
    assert len(tuning_job_name(longest_run_id) + "-99") <= 32


def test_every_task_has_a_timeout_transient_retries_and_a_catch():
    for name, state in STATES.items():
        if state["Type"] != "Task":
            continue
        assert state.get("TimeoutSeconds") or state.get("TimeoutSecondsPath"), name
        for retry in state.get("Retry", []):
            assert "States.ALL" not in retry["ErrorEquals"] and "States.TaskFailed" not in retry["ErrorEquals"], name
            assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] > 0, name
        *specific, catcher = state["Catch"]  # States.ALL comes last (it matches everything)
        assert catcher["ErrorEquals"] == ["States.ALL"], name
        for caught in specific:  # a named SageMaker error only: a wildcard would swallow the job's own failure
            assert not {"States.ALL", "States.TaskFailed"} & set(caught["ErrorEquals"]), name
        if name.startswith(("Notify", "RecordFailure")):
            continue  # the end of the run: a lost notification or record must not loop into itself
        assert catcher["ResultPath"] == "$.error", name
        marker = STATES[catcher["Next"]]
        assert marker["Type"] == "Pass" and marker["Next"] == "RecordFailure", name


def _caught_by(state: dict, error: str) -> str:
    """The state a task's Catch sends ``error`` to (catchers in order; States.TaskFailed matches any error
    but States.Timeout: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
    for catcher in state["Catch"]:
        names = catcher["ErrorEquals"]
        if error in names or "States.ALL" in names or ("States.TaskFailed" in names and error != "States.Timeout"):
            return catcher["Next"]
    raise AssertionError(f"{error} is not caught")


def test_a_refused_warm_start_tunes_without_it_and_a_failed_tuning_job_fails_the_run():
    """SageMaker refuses a parent whose hyperparameters moved too far (the Create call fails: the .sync
    integration names that SageMaker.AmazonSageMakerException, tests/twin/stepfunctions.py); the run then
    tunes from scratch. A tuning job that ran and failed (States.TaskFailed) or timed out fails the run. The
    fallback's job name differs from the refused one's, which SageMaker may have taken."""
    warm, plain = STATES["TuneWarmStart"], STATES["Tune"]
    for refused in ("SageMaker.AmazonSageMakerException", "SageMaker.ResourceNotFoundException"):
        assert _caught_by(warm, refused) == "Tune"
    fallback = warm["Catch"][0]
    assert fallback["ResultPath"] == "$.warm_start_refused"  # $.error stays the failure path's alone
    for failed in ("States.TaskFailed", "States.Timeout", "SageMaker.ResourceLimitExceededException"):
        assert _caught_by(warm, failed) == "TuneFailed"
        assert _caught_by(plain, failed) == "TuneFailed"
    assert _caught_by(plain, "SageMaker.AmazonSageMakerException") == "TuneFailed"  # no loop back
    assert warm["Parameters"].keys() - plain["Parameters"].keys() == {"WarmStartConfig.$"}

    def name(state: dict) -> str:
        return state["Parameters"]["HyperParameterTuningJobName.$"]

    assert name(warm) != name(plain) and name(warm).replace("-w{}", "-{}") == name(plain)
    # '-wN' fits the 3 characters tuning_job_name leaves only while the attempt count is one digit
    assert sum(retry["MaxAttempts"] for retry in warm["Retry"]) <= 9


def test_a_tuning_job_goes_to_the_refit_when_the_spec_asks_and_the_refit_runs_as_the_train_state():
    """Both tuning states lead to the refit choice; PrepareRefit replaces Prepare's answer, which the Train
    state runs (its timeout, its failure path, its job name); without ``tuning.refit`` the best trial's own
    model goes straight to PrepareEvaluation."""
    assert STATES["Tune"]["Next"] == STATES["TuneWarmStart"]["Next"] == "RefitOrEvaluate"
    choice = STATES["RefitOrEvaluate"]
    refit = "$.prepared.value.tuning.refit"  # a Choice cannot catch: a missing field must not fail the run
    assert choice["Choices"] == [
        {
            "And": [{"Variable": refit, "IsPresent": True}, {"Variable": refit, "BooleanEquals": True}],
            "Next": "PrepareRefit",
        }
    ]
    assert choice["Default"] == "PrepareEvaluation"
    refit = STATES["PrepareRefit"]
    assert refit["Parameters"]["Payload"] == {"run.$": "$.run", "job.$": "$.trained", "prepared.$": "$.prepared.value"}
    assert refit["ResultSelector"] == {"value.$": "$.Payload"} and refit["ResultPath"] == "$.prepared"
    assert refit["Next"] == "Train" and _caught_by(refit, "States.TaskFailed") == "PrepareRefitFailed"
    assert STATES["Train"]["Parameters"]["HyperParameters.$"] == "$.prepared.value.job.HyperParameters"


def test_a_failed_failure_record_still_ends_the_run_with_its_error():
    """RecordFailure's own failure goes to a Pass that builds the same fields the Fail state reads."""
    fallback = STATES[STATES["RecordFailure"]["Catch"][0]["Next"]]
    assert fallback["Type"] == "Pass" and fallback["ResultPath"] == "$.failure"
    assert set(fallback["Parameters"]["value"]) == {"error.$", "summary.$"}
    assert STATES["Failed"]["ErrorPath"] == "$.failure.value.error"
    assert STATES["Failed"]["CausePath"] == "$.failure.value.summary"


def _success_path() -> list[str]:
    """Walk from StartAt taking the success branch of each Choice; deployments are waited for in a loop
    the local runner does not need (its deployers return once serving)."""
    success_choice = {
        "TrainOrTune": "Train",
        "Gate": "Register",
        "DeployOrFinish": "Deploy",
        "DeploymentKind": "RecordOutcome",
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


def _edges(state: dict) -> list[str]:
    nxt = [state["Next"]] if "Next" in state else []
    nxt += [c["Next"] for c in state.get("Choices", [])] + ([state["Default"]] if "Default" in state else [])
    return nxt + [c["Next"] for c in state.get("Catch", [])]


def _events(name: str) -> int:
    """History events of one visit at its worst: every retry attempt taken (Step Functions writes Entered,
    Scheduled, Started, [Submitted for .sync,] Succeeded/Failed and Exited for a task; each retry another
    Scheduled, Started, [Submitted,] Failed; two for any other state)."""
    state = STATES[name]
    if state["Type"] != "Task":
        return 2
    sync = state["Resource"].endswith(".sync")
    attempts = sum(retry["MaxAttempts"] for retry in state.get("Retry", []))
    return (6 if sync else 5) + attempts * (4 if sync else 3)


def _loops() -> list[tuple[set[str], int]]:
    """The bounded wait loops: the states of each and its cap (the Choice that counts polls)."""
    loops = []
    for state in STATES.values():
        caps = [c for c in state.get("Choices", []) if c.get("Variable") == "$.polls.count"]
        if caps:
            wait = state["Default"]
            members, current = set(), wait
            while current not in members:
                members.add(current)
                following = STATES[current]
                current = following["Default"] if following["Type"] == "Choice" else following["Next"]
            loops.append((members, int(caps[0]["NumericGreaterThanEquals"])))
    return loops


def test_every_wait_loop_is_bounded():
    loops = _loops()
    assert len(loops) == 3  # the endpoint (staged, then released) and the Bedrock import
    for members, cap in loops:
        assert any(STATES[m]["Type"] == "Wait" for m in members) and cap <= 360
    looping = {m for members, _ in loops for m in members}
    for name in STATES:  # no other cycle: every other path ends
        seen, stack = set(), [(name, [name])]
        while stack:
            current, path = stack.pop()
            for nxt in _edges(STATES[current]):
                assert nxt not in path or nxt in looping, f"unbounded cycle through {[*path, nxt]}"
                if nxt not in path and (current, nxt) not in seen:
                    seen.add((current, nxt))
                    stack.append((nxt, [*path, nxt]))


def test_the_worst_case_history_stays_under_the_limit():
    """The longest allowed run: every state on the longest simple path at its worst (all retries taken),
    plus every wait loop polled to its cap. .sync jobs add no events while they run, however long."""
    looping = {m for members, _ in _loops() for m in members}

    def longest(name: str, path: frozenset[str]) -> int:
        tails = [longest(n, path | {n}) for n in _edges(STATES[name]) if n not in path and n not in looping]
        return _events(name) + max(tails, default=0)

    worst = 2 + longest(ASL["StartAt"], frozenset({ASL["StartAt"]}))  # + ExecutionStarted / ExecutionFailed
    worst += sum(cap * sum(_events(m) for m in members) for members, cap in _loops())
    assert worst < HISTORY_LIMIT, worst


def test_an_endpoint_takes_traffic_only_after_its_parity_check():
    """Deploy stages the version; once the endpoint is InService CheckParity checks it and moves the traffic;
    the run records its outcome only when the endpoint is InService again. A mismatch (ParityFailed) or a
    failed release ends the run on the failure path, naming CheckParity."""
    assert STATES["EndpointStatus"]["Choices"][0] == {
        "Variable": "$.endpoint.EndpointStatus",
        "StringEquals": "InService",
        "Next": "CheckParity",
    }
    check = STATES["CheckParity"]
    assert check["Parameters"]["FunctionName"] == "${CheckParityFunctionArn}"
    assert check["Parameters"]["Payload"] == {"run.$": "$.run", "version.$": "$.registered.value.version"}
    assert check["ResultPath"] == "$.deployment"  # what RecordOutcome reports: the released traffic
    assert STATES[check["Catch"][0]["Next"]]["Result"] == "CheckParity"
    moving = STATES[check["Next"]]
    assert moving["Choices"][0]["Next"] == "RecordOutcome" and moving["Default"] == "StartReleaseWait"
    released = [c["Next"] for c in STATES["ReleaseStatus"]["Choices"]]
    # a canary its alarms rolled back fails (tests/unit/test_asl_release.py runs the choice), then InService
    assert released[:2] == ["ReleaseRolledBack", "RecordOutcome"]
    assert all(STATES[STATES[name]["Next"]]["Result"] == "CheckParity" for name in (released[0], released[2]))
    for name, state in STATES.items():  # nothing else leads from a deployment to the outcome
        if name not in ("DeployOrFinish", "DeploymentKind", "TrafficMoving", "ReleaseStatus", "ImportStatus"):
            assert "RecordOutcome" not in _edges(state), name
