"""PrepareRefit after the Tune state: the tuning job's best feasible trial (its trials recorded), and
Prepare's answer again with that trial's settings refit for the Train state; a trial whose log carried no
``tuning:model_step`` (it cannot say how long its model trained) fails the step naming the job. SageMaker
through botocore's Stubber; the run's records in a local artifacts folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.unit.tuning.test_amt import AWS, RUN_ID, SPEC, run_request, training_request
from trainforge.aws.sagemaker_requests import create_training_job
from trainforge.contracts import TrainingRequest
from trainforge.errors import TrainingFailed
from trainforge.pipeline.admission import record_admission
from trainforge.pipeline.handlers import handle_prepare_refit
from trainforge.settings import Settings
from trainforge.training.config import TrainConfig
from trainforge.tuning.amt import tuning_job_name
from trainforge.tuning.objective import MODEL_STEP, OBJECTIVE_METRIC

TUNING = tuning_job_name(RUN_ID) + "-0"
BEST = f"{TUNING}-002-5a6b7c8d"
ARN = "arn:aws:sagemaker:us-east-1:123456789012"


def _event(artifacts: Path) -> dict[str, Any]:
    run = run_request(artifacts.as_uri())
    record_admission(run, SPEC, artifacts.as_uri())
    training = training_request()
    prepared = {
        "training": training.model_dump(mode="json"),
        "job": create_training_job(training, AWS),
        "timeout_seconds": 93600,
        "tuning": {"refit": True},
    }
    job = {"name": TUNING, "arn": f"{ARN}:hyper-parameter-tuning-job/{TUNING}", "tuning": True}
    return {"run": json.loads(run.model_dump_json()), "job": job, "prepared": prepared}


def _stub(stub: Stubber, metrics: list[dict[str, Any]]) -> None:
    best = {
        "TrainingJobName": BEST,
        "TrainingJobArn": f"{ARN}:training-job/{BEST}",
        "CreationTime": "2026-11-30T10:02:00Z",
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": {"learning_rate": "0.00045", "lora_rank": "11"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": OBJECTIVE_METRIC, "Value": 0.37},
    }
    described_tuning = {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": "2026-11-30T10:00:00Z",
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
        "BestTrainingJob": best,
    }
    stub.add_response("describe_hyper_parameter_tuning_job", described_tuning, {"HyperParameterTuningJobName": TUNING})
    stub.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [best]},
        {"HyperParameterTuningJobName": TUNING},
    )
    # a trial's mapping: the static settings, its tuned ones, and what AMT adds
    trial = training_request().hyperparameters | {
        "learning_rate": "0.00045",
        "lora_rank": "11",
        "_tuning_objective_metric": OBJECTIVE_METRIC,
    }
    described = {
        "TrainingJobName": BEST,
        "TrainingJobArn": f"{ARN}:training-job/{BEST}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://artifacts/runs/{RUN_ID}/train/output/{BEST}/output/model.tar.gz"},
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "HyperParameters": trial,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "image"},
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 200},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": "2026-11-30T10:02:00Z",
        "FinalMetricDataList": metrics,
    }
    stub.add_response("describe_training_job", described, {"TrainingJobName": BEST})


def test_the_refit_is_the_best_trials_settings_on_the_whole_training_side(tmp_path, aws_env):
    client = boto3.client("sagemaker", region_name="us-east-1")
    event = _event(tmp_path)
    with Stubber(client) as stub:
        _stub(stub, [{"MetricName": MODEL_STEP, "Value": 50.0, "Timestamp": "2026-11-30T10:30:00Z"}])
        answer = handle_prepare_refit(event, Settings(artifacts_uri=tmp_path.as_uri()), client)
    # Prepare's answer again, the Train state's request now the refit's (name, channels, bounds unchanged)
    job, prepared = answer["job"], event["prepared"]
    assert {k: v for k, v in job.items() if k != "HyperParameters"} == {
        k: v for k, v in prepared["job"].items() if k != "HyperParameters"
    }
    assert answer["timeout_seconds"] == prepared["timeout_seconds"]
    config = TrainConfig.from_hyperparameters(job["HyperParameters"])
    assert (config.learning_rate, config.lora_rank) == (0.00045, 11)
    assert config.max_steps == math.ceil(50 / (1 - SPEC.tuning.selection_fraction)) and config.selection_fraction == 0
    assert "_tuning_objective_metric" not in job["HyperParameters"]
    assert TrainingRequest.model_validate(answer["training"]).hyperparameters == job["HyperParameters"]
    trials = json.loads((tmp_path / "runs" / RUN_ID / "tune" / "trials.json").read_text())
    assert [t["job_name"] for t in trials if t["best"]] == [BEST]


def test_a_trial_that_did_not_say_how_long_its_model_trained_fails_the_refit_naming_it(tmp_path, aws_env):
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub, pytest.raises(TrainingFailed, match=f"training job {BEST} reported no {MODEL_STEP}"):
        _stub(stub, [])
        handle_prepare_refit(_event(tmp_path), Settings(artifacts_uri=tmp_path.as_uri()), client)
