"""The AWS tuning path, executed: a spec with ``tuning:`` runs Validate -> Plan -> Prepare -> Tune (SageMaker
AMT, its trials real training jobs of the tiny model on the twin) -> PrepareEvaluation (the best feasible
trial) -> Evaluate -> Gate -> Register. A run none of whose trials keeps the forgetting budget is refused by
PrepareEvaluation's own test (tests/unit/tuning/test_amt.py): on the tiny model's random weights a trial's
forgetting is often negative (training on any text lowers the probes' perplexity), so no budget makes every
drawn trial infeasible here reliably."""

from __future__ import annotations

import pytest

from tests.integration.test_aws_pipeline import SFT, spec

TUNING = "tuning: {max_jobs: 2, parallel: 1, early_stopping: false, ranges: {max_steps: [4, 8]}}\n"


def tuned(max_forgetting: float) -> str:
    text = spec(steps=6, deploy="{target: none}").replace("max_forgetting: 100.0", f"max_forgetting: {max_forgetting}")
    return text + TUNING


def _trials(aws, tuning_job: str) -> list[dict]:
    return aws.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)[
        "TrainingJobSummaries"
    ]


@pytest.mark.slow  # two tiny training jobs and one evaluation: ~2 min on 2 cores
def test_a_tuned_run_registers_its_best_trial(aws):
    execution = aws.run(tuned(100.0), data=SFT)
    assert execution["status"] == "SUCCEEDED", execution
    run_id = execution["run_id"]
    passed = [s for s in execution["path"] if s in ("Tune", "Train", "PrepareEvaluation", "Evaluate", "Register")]
    assert passed == ["Tune", "PrepareEvaluation", "Evaluate", "Register"]
    (tuning,) = aws.twin.tuning_jobs.values()
    described = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning.name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 2
    trials = _trials(aws, tuning.name)
    best = min(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert described["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    # the registered model is the best trial's: its artifacts, its tuned settings in the run's record
    (package,) = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    container = aws.sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])[
        "InferenceSpecification"
    ]["Containers"][0]
    model_uri = container.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri") or container["ModelDataUrl"]
    assert f"/{best['TrainingJobName']}/output/" in model_uri
    recorded = aws.artifact(run_id, "tune/trials.json")
    assert [t["job_name"] for t in recorded if t["best"]] == [best["TrainingJobName"]]
    assert {t["job_name"] for t in recorded} == {t["TrainingJobName"] for t in trials}
    assert aws.artifact(run_id, "outcome.json")["status"] == "succeeded"
