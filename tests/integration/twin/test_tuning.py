"""CreateHyperParameterTuningJob through the twin: its trials run as real training jobs of the tiny model."""

from __future__ import annotations

import re
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.twin.conftest import channel, training_request, wait


def tuning_request(name: str, role: str, channels: list, total: int) -> dict:
    """A tuning job over ``training_request``'s job: the objective is the loss its MetricDefinitions match."""
    training = training_request("unused", role, channels)
    static = {k: v for k, v in training["HyperParameters"].items() if k != "lora_rank"}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "train:loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": total, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
                ],
                "IntegerParameterRanges": [
                    {"Name": "lora_rank", "MinValue": "2", "MaxValue": "4", "ScalingType": "Linear"}
                ],
                "CategoricalParameterRanges": [{"Name": "lora_dropout", "Values": ["0.0", "0.1"]}],
            },
            "TrainingJobEarlyStoppingType": "Off",
            "RandomSeed": 7,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            **{
                key: training[key]
                for key in (
                    "AlgorithmSpecification",
                    "RoleArn",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                )
            },
        },
    }


@pytest.mark.slow  # two real 2-step training runs: ~60 s on 2 cores
def test_a_tuning_job_runs_its_trials_and_names_the_best(sagemaker_twin, sagemaker_role, base_model_uri, train_uri):
    sagemaker = boto3.client("sagemaker")
    channels = [channel("train", train_uri), channel("base_model", base_model_uri)]
    sagemaker.create_hyper_parameter_tuning_job(**tuning_request("twin-tune", sagemaker_role, channels, total=2))
    first = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-tune")
    described = wait(
        lambda: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-tune"),
        "HyperParameterTuningJobStatus",
    )

    assert first["HyperParameterTuningJobStatus"] == "InProgress" and "BestTrainingJob" not in first
    assert described["HyperParameterTuningJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TrainingJobStatusCounters"] == {
        "Completed": 2, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0
    }  # fmt: skip
    assert described["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 0}
    pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName="twin-tune", PaginationConfig={"PageSize": 1}
    )
    trials = [summary for page in pages for summary in page["TrainingJobSummaries"]]
    assert len(trials) == 2
    for trial in trials:
        assert re.fullmatch(r"twin-tune-00[12]-[0-9a-f]{8}", trial["TrainingJobName"])
        tuned = trial["TunedHyperParameters"]
        assert 1e-4 <= float(tuned["learning_rate"]) <= 1e-2 and tuned["lora_rank"] in {"2", "3", "4"}
        assert tuned["lora_dropout"] in {"0.0", "0.1"} and trial["ObjectiveStatus"] == "Succeeded"
        job = sagemaker.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        assert job["HyperParameters"]["lora_rank"] == tuned["lora_rank"] and job["HyperParameters"]["max_steps"] == "2"
        assert job["TuningJobArn"] == described["HyperParameterTuningJobArn"]
        (loss,) = [m["Value"] for m in job["FinalMetricDataList"] if m["MetricName"] == "train:loss"]
        assert trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(loss)
    best = min(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert described["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    assert described["BestTrainingJob"]["TunedHyperParameters"] == best["TunedHyperParameters"]


def test_stopping_a_tuning_job_stops_its_running_trial_and_starts_no_more(
    sagemaker_twin, sagemaker_role, base_model_uri, train_uri
):
    sagemaker = boto3.client("sagemaker")
    channels = [channel("train", train_uri), channel("base_model", base_model_uri)]
    sagemaker.create_hyper_parameter_tuning_job(**tuning_request("twin-stop", sagemaker_role, channels, total=3))
    deadline = time.monotonic() + 30
    while not sagemaker_twin.tuning_jobs["twin-stop"].trials:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-stop")
    described = wait(
        lambda: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-stop"),
        "HyperParameterTuningJobStatus",
    )
    assert described["HyperParameterTuningJobStatus"] == "Stopped"
    (trial,) = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-stop")[
        "TrainingJobSummaries"
    ]
    assert trial["TrainingJobStatus"] == "Stopped" and trial["ObjectiveStatus"] == "Failed"
    assert described["TrainingJobStatusCounters"]["Stopped"] == 1 and "BestTrainingJob" not in described
    with pytest.raises(ClientError, match="in status Stopped"):
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="twin-stop")


def test_a_warm_start_from_a_tuning_job_that_does_not_exist_is_refused(sagemaker_twin, sagemaker_role, train_uri):
    request = tuning_request("twin-warm", sagemaker_role, [channel("train", train_uri)], total=1)
    request["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "never-ran"}],
        "WarmStartType": "TransferLearning",
    }
    with pytest.raises(ClientError, match="never-ran") as refused:
        boto3.client("sagemaker").create_hyper_parameter_tuning_job(**request)
    assert refused.value.response["Error"]["Code"] == "ResourceNotFound"
    assert not sagemaker_twin.tuning_jobs
