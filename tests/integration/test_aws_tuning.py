"""The AWS tuning path, executed: a spec with ``tuning:`` runs Validate -> Plan -> Prepare -> Tune (SageMaker
AMT, its trials real training jobs of the tiny model on the twin) -> PrepareRefit (the best feasible trial's
settings, refit on the whole training side) -> Train -> PrepareEvaluation -> Evaluate -> Gate -> Register. A run none of whose trials keeps the forgetting budget is refused by
PrepareEvaluation's own test (tests/unit/tuning/test_amt.py): on the tiny model's random weights a trial's
forgetting is often negative (training on any text lowers the probes' perplexity), so no budget makes every
drawn trial infeasible here reliably."""

from __future__ import annotations

import math

import pytest

from tests.integration.test_aws_pipeline import SFT, spec

TUNING = "tuning: {max_jobs: 2, parallel: 1, early_stopping: false, refit: true, ranges: {max_steps: [4, 8]}}\n"


def tuned(max_forgetting: float) -> str:
    text = spec(steps=6, deploy="{target: none}").replace("max_forgetting: 100.0", f"max_forgetting: {max_forgetting}")
    return text + TUNING


def _trials(aws, tuning_job: str) -> list[dict]:
    return aws.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)[
        "TrainingJobSummaries"
    ]


@pytest.mark.slow  # two tiny training jobs, the refit and one evaluation: ~2 min on 2 cores
def test_a_tuned_run_registers_its_best_trials_settings_refit(aws):
    execution = aws.run(tuned(100.0), data=SFT)
    assert execution["status"] == "SUCCEEDED", execution
    run_id = execution["run_id"]
    states = ("Tune", "PrepareRefit", "Train", "PrepareEvaluation", "Evaluate", "Register")
    passed = [s for s in execution["path"] if s in states]
    assert passed == list(states)
    (tuning,) = aws.twin.tuning_jobs.values()
    described = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning.name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 2
    trials = _trials(aws, tuning.name)
    best = min(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert described["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    # the refit: the best trial's tuned settings, on the whole training side, as many passes as its model
    # trained (the container's tuning:model_step, read by SageMaker from its log)
    trial = aws.sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    (model_step,) = [m["Value"] for m in trial["FinalMetricDataList"] if m["MetricName"] == "tuning:model_step"]
    refit = aws.training_job(run_id)
    assert refit["TrainingJobStatus"] == "Completed"
    hyper = refit["HyperParameters"]
    searched = {name: value for name, value in best["TunedHyperParameters"].items() if name != "max_steps"}
    assert {name: hyper[name] for name in searched} == searched
    assert hyper["selection_fraction"] == "0.0" and hyper["max_forgetting"] == "null"
    assert int(hyper["max_steps"]) == math.ceil(model_step / 0.8)  # tuning.selection_fraction 0.2
    # the registered model is the refit's: its artifacts, the tuning job's trials in the run's record
    (package,) = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    container = aws.sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])[
        "InferenceSpecification"
    ]["Containers"][0]
    model_uri = container.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri") or container["ModelDataUrl"]
    assert f"/{refit['TrainingJobName']}/output/" in model_uri
    recorded = aws.artifact(run_id, "tune/trials.json")
    assert [t["job_name"] for t in recorded if t["best"]] == [best["TrainingJobName"]]
    assert {t["job_name"] for t in recorded} == {t["TrainingJobName"] for t in trials}
    assert aws.artifact(run_id, "outcome.json")["status"] == "succeeded"
