"""RecordFailure on the twin: a run that fails while its job still runs stops the job (it bills until it
ends), and names the job's log streams in failure.json."""

from __future__ import annotations

import json
import time

import boto3

from tests.integration.twin.conftest import BUCKET, channel, training_request, wait
from trainforge.contracts import RunRequest
from trainforge.pipeline.handlers import handle_record_failure
from trainforge.settings import Settings


def test_a_failed_run_stops_its_running_job_and_points_at_its_logs(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri, monkeypatch
):
    """Given a run whose training job is still running, when the run fails elsewhere (a task timeout, a
    failed step), then RecordFailure stops the job and records it, with its log streams."""
    run_id = "support-0123456789ab"
    sagemaker = boto3.client("sagemaker")
    request = training_request(
        f"{run_id}-0", sagemaker_role, [channel("train", train_uri), channel("base_model", base_model_uri)]
    )
    request["HyperParameters"]["max_steps"] = "100000"
    sagemaker.create_training_job(**request)
    deadline = time.monotonic() + 120
    while sagemaker_twin.training_jobs[f"{run_id}-0"].container is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{BUCKET}")
    run = RunRequest(
        run_id=run_id,
        job_name="support",
        spec_uri="s3://data/jobs/support.yaml",
        spec_sha256="0" * 64,
        datasets=[],
        trigger="upload",
        artifacts_uri=f"s3://{BUCKET}/runs/{run_id}/",
    )
    state = {
        "run": json.loads(run.model_dump_json()),
        "trained": {"name": f"{run_id}-0", "arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{run_id}-0"},
        "failed_state": "Train",
        "error": {"Error": "States.Timeout", "Cause": "the task timed out"},
    }

    failure = handle_record_failure(state, Settings())

    assert failure["stopped_jobs"] == [f"{run_id}-0"] and failure["error"] == "StepTimedOut"
    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName=f"{run_id}-0"), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Stopped"
    assert failure["log_uris"] and failure["log_uris"][0].startswith(
        f"cloudwatch:/aws/sagemaker/TrainingJobs/{run_id}-0/"
    )
    recorded = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=f"runs/{run_id}/failure.json")["Body"].read()
    )
    assert recorded["stopped_jobs"] == [f"{run_id}-0"] and "States.Timeout" in recorded["cause"]
