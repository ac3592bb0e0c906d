"""RecordFailure after the Tune state: the tuning job's own reason and its telling trial's log streams are
recorded, and a tuning job still running is stopped under its cut name (which does not hold the run id).
SageMaker's tuning calls go through botocore's Stubber (moto has no StopHyperParameterTuningJob); the log
streams are moto's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.unit.tuning.test_amt import RUN_ID, run_request
from trainforge.pipeline.handlers import handle_record_failure
from trainforge.settings import Settings
from trainforge.tuning.amt import tuning_job_name

TUNING = tuning_job_name(RUN_ID) + "-0"
TRIAL = f"{TUNING}-002-5a6b7c8d"
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
REASON = "All training jobs failed. Please check the training job logs for more information."


@pytest.fixture
def aws(aws_env: None) -> Any:
    with mock_aws():
        logs = boto3.client("logs")
        logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{TRIAL}/algo-1-1764500000")
        yield logs


def _state(error: dict[str, str]) -> dict[str, Any]:
    return {"run": json.loads(run_request().model_dump_json()), "failed_state": "Tune", "error": error}


def _nothing_else_running(stub: Stubber, tuning_jobs: list[dict[str, Any]]) -> None:
    running = {"NameContains": RUN_ID, "StatusEquals": "InProgress"}
    stub.add_response("list_training_jobs", {"TrainingJobSummaries": []}, running)
    stub.add_response("list_processing_jobs", {"ProcessingJobSummaries": []}, running)
    stub.add_response(
        "list_hyper_parameter_tuning_jobs",
        {"HyperParameterTuningJobSummaries": tuning_jobs},
        {"NameContains": tuning_job_name(RUN_ID), "StatusEquals": "InProgress"},
    )


def test_a_failed_tuning_job_is_recorded_with_its_reason_and_its_latest_trials_logs(aws, tmp_path):
    sagemaker = boto3.client("sagemaker")
    described = {  # DescribeHyperParameterTuningJob, as the .sync task's cause carries it
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobStatus": "Failed",
        "FailureReason": REASON,
    }
    trial = {
        "TrainingJobName": TRIAL,
        "TrainingJobArn": f"{ARN}:training-job/{TRIAL}",
        "CreationTime": datetime(2026, 11, 30, 10, tzinfo=UTC),
        "TrainingJobStatus": "Failed",
        "TunedHyperParameters": {"learning_rate": "0.0004"},
    }
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": [trial]},
            {
                "HyperParameterTuningJobName": TUNING,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        )
        _nothing_else_running(stub, [])
        error = {"Error": "States.TaskFailed", "Cause": json.dumps(described)}
        failure = handle_record_failure(_state(error), Settings(artifacts_uri=tmp_path.as_uri()), sagemaker, aws)
        stub.assert_no_pending_responses()

    recorded = json.loads((tmp_path / "runs" / RUN_ID / "failure.json").read_text())
    assert recorded["error"] == failure["error"] == "TrainingFailed"
    assert recorded["cause"] == f"tuning job {TUNING} ended Failed: {REASON}"
    assert recorded["log_uris"] == [f"cloudwatch:/aws/sagemaker/TrainingJobs/{TRIAL}/algo-1-1764500000"]


def test_a_tuning_job_still_running_when_the_run_fails_is_stopped(aws, tmp_path):
    sagemaker = boto3.client("sagemaker")
    running = {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobStatus": "InProgress",
        "Strategy": "Bayesian",
        "CreationTime": datetime(2026, 11, 30, 10, tzinfo=UTC),
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
    }
    with Stubber(sagemaker) as stub:
        _nothing_else_running(stub, [running])
        stub.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": TUNING})
        error = {"Error": "States.Timeout", "Cause": "the task timed out"}
        failure = handle_record_failure(_state(error), Settings(artifacts_uri=tmp_path.as_uri()), sagemaker, aws)
        stub.assert_no_pending_responses()

    assert failure["stopped_jobs"] == [TUNING] and failure["error"] == "StepTimedOut"
    assert RUN_ID not in TUNING  # why the tuning job is found by its own name, not the run id
