"""RecordFailure on the twin: a run that fails while its job still runs stops the job (it bills until it
ends), and names the job's log streams in failure.json; a job the kernel killed for memory is recorded
with SageMaker's words for it and the memory hint."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import boto3

from tests.integration.twin.conftest import BUCKET, channel, training_request, wait
from tests.twin.container import OUT_OF_MEMORY
from trainforge.contracts import RunRequest
from trainforge.pipeline.handlers import handle_record_failure
from trainforge.settings import Settings

RUN_ID = "support-0123456789ab"
JOB = f"{RUN_ID}-0"


def _start_long_job(sagemaker_twin: Any, role: str, base_model_uri: str, train_uri: str) -> Any:
    """A training job that would run for a long time, once its container has started."""
    sagemaker = boto3.client("sagemaker")
    request = training_request(JOB, role, [channel("train", train_uri), channel("base_model", base_model_uri)])
    request["HyperParameters"]["max_steps"] = "100000"
    sagemaker.create_training_job(**request)
    deadline = time.monotonic() + 120
    while sagemaker_twin.training_jobs[JOB].container is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return sagemaker


def _state(error: dict[str, str]) -> dict[str, Any]:
    """The pipeline state RecordFailure receives after Train failed with ``error``."""
    run = RunRequest(
        run_id=RUN_ID,
        job_name="support",
        spec_uri="s3://data/jobs/support.yaml",
        spec_sha256="0" * 64,
        datasets=[],
        trigger="upload",
        artifacts_uri=f"s3://{BUCKET}/runs/{RUN_ID}/",
    )
    return {
        "run": json.loads(run.model_dump_json()),
        "trained": {"name": JOB, "arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}"},
        "failed_state": "Train",
        "error": error,
    }


def _recorded() -> dict[str, Any]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"runs/{RUN_ID}/failure.json")["Body"].read()
    return json.loads(body)


def test_a_failed_run_stops_its_running_job_and_points_at_its_logs(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri, monkeypatch
):
    """Given a run whose training job is still running, when the run fails elsewhere (a task timeout, a
    failed step), then RecordFailure stops the job and records it, with its log streams."""
    sagemaker = _start_long_job(sagemaker_twin, sagemaker_role, base_model_uri, train_uri)
    monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{BUCKET}")

    failure = handle_record_failure(_state({"Error": "States.Timeout", "Cause": "the task timed out"}), Settings())

    assert failure["stopped_jobs"] == [JOB] and failure["error"] == "StepTimedOut"
    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName=JOB), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Stopped"
    assert failure["log_uris"] and failure["log_uris"][0].startswith(f"cloudwatch:/aws/sagemaker/TrainingJobs/{JOB}/")
    recorded = _recorded()
    assert recorded["stopped_jobs"] == [JOB] and "States.Timeout" in recorded["cause"]


def test_a_job_killed_for_memory_is_recorded_with_the_memory_hint(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri, monkeypatch
):
    """Given a training job whose process the kernel kills (SIGKILL nobody asked for: exit code 137), when the
    .sync Train task fails with the job's description as its cause, then failure.json carries SageMaker's
    reason and the out-of-memory hint with its levers."""
    sagemaker = _start_long_job(sagemaker_twin, sagemaker_role, base_model_uri, train_uri)
    os.kill(sagemaker_twin.training_jobs[JOB].container.process.pid, signal.SIGKILL)  # as the OOM killer would
    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName=JOB), "TrainingJobStatus")
    assert (described["TrainingJobStatus"], described["FailureReason"]) == ("Failed", OUT_OF_MEMORY)
    monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{BUCKET}")
    cause = json.dumps(described, default=str)  # what a .sync task's failure carries

    failure = handle_record_failure(_state({"Error": "States.TaskFailed", "Cause": cause}), Settings())

    recorded = _recorded()
    assert recorded["error"] == failure["error"] == "TrainingFailed"
    assert recorded["cause"] == f"training job {JOB} ended Failed: {OUT_OF_MEMORY}"
    assert recorded["hint"].startswith("Out of memory, most likely")
    assert "batch_size" in recorded["hint"] and "gradient_checkpointing" in recorded["hint"]
