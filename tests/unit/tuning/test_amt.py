"""SageMaker AMT: the tuning request the Prepare step builds passes the twin's rules, its metric regexes
match what the real training container prints, and the tuning job's outcome is read as the local one is."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from botocore.stub import Stubber

from tests.conftest import chat
from tests.twin import rules
from tests.unit.twin.test_rules import KEY, SAGEMAKER_ROLE, VPC, StubContext
from trainforge.aws.sagemaker_requests import AwsResources, create_training_job
from trainforge.contracts import RunRequest, TrainingRequest
from trainforge.local.opt_ml import prepare_training_tree
from trainforge.spec import parse_spec
from trainforge.training.config import TrainConfig
from trainforge.tuning.amt import create_tuning_job, finish_tuning, prepared_tuning, tuning_job_name
from trainforge.tuning.local import InfeasibleStudy
from trainforge.tuning.objective import INFEASIBLE_PENALTY, OBJECTIVE_METRIC
from trainforge.tuning.space import trial_space

RUN_ID = "support-assistant-3f2a9c1b7d4e"
SPEC = parse_spec(
    "name: support-assistant\nbase_model: lite\ndata: {train: datasets/support/train.jsonl}\n"
    "tuning: {max_jobs: 6, parallel: 2}\nevaluation: {max_forgetting: 0.05}"
)
AWS = AwsResources("us-east-1", SAGEMAKER_ROLE, KEY, tuple(VPC["Subnets"]), tuple(VPC["SecurityGroupIds"]))


def run_request(artifacts_uri: str = "s3://artifacts") -> RunRequest:
    """The tuned run the tests of its AWS steps share."""
    return RunRequest(
        run_id=RUN_ID,
        job_name="support-assistant",
        spec_uri="s3://data/jobs/support-assistant.yaml",
        spec_sha256="0" * 64,
        datasets=[],
        trigger="upload",
        artifacts_uri=f"{artifacts_uri}/runs/{RUN_ID}/",
    )


def training_request() -> TrainingRequest:
    hyper = TrainConfig(max_steps=40, max_forgetting=0.05, spec_sha256="0" * 64).to_hyperparameters()
    return TrainingRequest(
        run_id=RUN_ID,
        job_name="support-assistant",
        training_job_name=RUN_ID,
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge-training:1.0",
        instance_type="ml.g5.2xlarge",
        instance_count=1,
        spot=False,
        max_runtime_seconds=86400,
        volume_size_gb=200,
        channels={"train": "s3://data/datasets/support/train.jsonl", "base_model": "s3://artifacts/base-models/lite/"},
        hyperparameters=hyper,
        checkpoint_uri=f"s3://artifacts/runs/{RUN_ID}/train/checkpoints",
        output_uri=f"s3://artifacts/runs/{RUN_ID}/train/output",
    )


def tuning_request(parent: str | None = None) -> dict:
    training = training_request()
    return create_tuning_job(create_training_job(training, AWS), trial_space(training, SPEC), SPEC, RUN_ID, parent)


def test_the_tuning_request_passes_the_twins_rules_with_and_without_warm_start():
    for parent in (None, "support-asst-0a1b2c3d4e5f"):
        request = tuning_request(parent)
        assert rules.check(rules.TUNING, request, StubContext()) == []
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": OBJECTIVE_METRIC}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert request["WarmStartConfig"]["WarmStartType"] == "TransferLearning"
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "learning_rate" not in static and json.loads(static["max_forgetting"]) == 0.05
    assert len(tuning_job_name("a" * 40 + "-" + "f" * 12) + "-99") <= 32
    # one checkpoint prefix would be every trial's: each would resume another's state (another LoRA rank)
    assert "CheckpointConfig" in create_training_job(training_request(), AWS)
    assert "CheckpointConfig" not in request["TrainingJobDefinition"]


def test_a_step_bound_and_an_epoch_bound_run_name_the_same_hyperparameters():
    """A warm start needs the parent's count of static plus tuned hyperparameters; the automatic settings
    switch between max_steps and epochs with the data, so every setting is named, a None one as "null"."""

    def request_for(config: TrainConfig) -> dict:
        training = training_request().model_copy(update={"hyperparameters": config.to_hyperparameters()})
        return create_tuning_job(create_training_job(training, AWS), trial_space(training, SPEC), SPEC, RUN_ID)

    def named(request: dict) -> tuple[set[str], dict[str, str]]:
        ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"].values()
        static = request["TrainingJobDefinition"]["StaticHyperParameters"]
        return {r["Name"] for kind in ranges for r in kind} | set(static), static

    by_steps, _ = named(request_for(TrainConfig(max_steps=40, max_forgetting=0.05)))
    by_epochs, static = named(request_for(TrainConfig(epochs=3, max_forgetting=0.05)))
    assert by_steps == by_epochs and static["max_steps"] == "null"
    assert TrainConfig.from_hyperparameters(static | {"epochs": "2.5"}).max_steps is None  # as a trial reads it


@pytest.mark.parametrize("metric", ["eval_loss", "exact_match"])
def test_the_metric_regexes_match_what_the_real_container_prints(tmp_path, tiny_model_dir, metric):
    """A real tiny training trial on the /opt/ml contract; SageMaker applies each regex to each log line and
    keeps its first group (https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html)."""
    train = tmp_path / "train"
    train.mkdir()
    (train / "t.jsonl").write_text("".join(json.dumps(chat(f"q{i}", "answer is paris")) + "\n" for i in range(24)))
    hyper = TrainConfig(
        max_steps=2,
        batch_size=4,
        max_seq_len=64,
        eval_every=1,
        lora_rank=2,
        max_forgetting=0.05,
        validation_fraction=0.25,
        selection_metric=metric,
    ).to_hyperparameters()
    root = prepare_training_tree(tmp_path / "ml", {"train": train, "base_model": tiny_model_dir}, hyper)
    result = subprocess.run(
        [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(root), "train"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    objective = next(r for r in printed if r.get("event") == "objective")
    definitions = tuning_request()["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    found: dict[str, list[float]] = {}
    for line in result.stdout.splitlines():
        for definition in definitions:
            match = re.search(definition["Regex"], line)
            if match:
                found.setdefault(definition["Name"], []).append(float(match.group(1)))
    # early stopping reads the objective per evaluation (the best validation's so far); the last value, which
    # AMT keeps, is the constrained one
    evals = found["validation:loss"]
    assert len(evals) == 2
    if metric == "eval_loss":
        so_far = [evals[0], min(evals)]
        assert "validation:exact_match" not in found and "tuning:exact_match" not in found
    else:  # 1 - exact match, ties to the lower loss; the validation lines' exact match is a metric of its own
        exact = found["validation:exact_match"]
        assert len(exact) == 2 and all(0.0 <= value <= 1.0 for value in exact)
        so_far = [round(1 - exact[0], 6), round(1 - max(exact), 6)]
        assert found["tuning:exact_match"] == [objective["exact_match"]] == [max(exact)]
        assert objective["objective"] == pytest.approx(1 - objective["exact_match"])
    assert found[OBJECTIVE_METRIC] == [*so_far, objective["tuning_objective"]]
    assert found["tuning:forgetting"] == [objective["forgetting"]]
    assert found["tuning:best_eval_loss"] == [objective["best_eval_loss"]]
    if metric == "eval_loss":
        assert objective["best_eval_loss"] == min(evals)
    # the step whose weights the trial ended with (a refit trains as long): the restored best's, else the last
    restored = [r["step"] for r in printed if r.get("event") == "restored_best"]
    assert found["tuning:model_step"] == [objective["model_step"]] == [restored[0] if restored else 2]
    steps = [r["loss"] for r in printed if "step" in r and "loss" in r]
    assert len(steps) == 2 and set(steps) <= set(found["train:loss"])


def _summary(name: str, value: float | None, status: str = "Completed") -> dict:
    summary = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": f"2026-11-30T10:0{name[-1]}:00Z",
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"learning_rate": "0.0005", "lora_targets": "attention"},
    }
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": OBJECTIVE_METRIC, "Value": value}
    return summary


@pytest.mark.parametrize("best_value", [0.82, INFEASIBLE_PENALTY + 0.9])
def test_the_tuning_jobs_best_is_the_run_unless_even_it_forgot_too_much(tmp_path, best_value):
    import boto3

    client = boto3.client("sagemaker", region_name="us-east-1")
    name = "support-asst-3f2a9c1b7d4e-0"
    summaries = [
        _summary("job-1", best_value),
        _summary("job-2", INFEASIBLE_PENALTY + 1.5),
        _summary("job-3", None, "Stopped"),
    ]
    described = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}",
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": "2026-11-30T10:00:00Z",
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
        "BestTrainingJob": summaries[0],
    }
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", described, {"HyperParameterTuningJobName": name})
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": summaries},
            {"HyperParameterTuningJobName": name},
        )
        trials_uri = (tmp_path / "tune" / "trials.json").as_uri()
        if best_value >= INFEASIBLE_PENALTY:
            with pytest.raises(InfeasibleStudy, match="no feasible trial"):
                finish_tuning(client, name, SPEC, tmp_path.as_uri(), trials_uri)
            assert not (tmp_path / "runs" / "latest" / "support-assistant.tuning.json").exists()
        else:
            # the trials' objective is what the spec's tuning.objective says it is (the report labels it)
            spec = SPEC.model_copy(update={"tuning": SPEC.tuning.model_copy(update={"objective": "exact_match"})})
            assert finish_tuning(client, name, spec, tmp_path.as_uri(), trials_uri) == "job-1"
            written = json.loads((tmp_path / "tune" / "trials.json").read_text())
            assert [t["metric"] for t in written] == ["exact_match"] * 3 and written[0]["objective"] == 0.82
            parent = json.loads((tmp_path / "runs" / "latest" / "support-assistant.tuning.json").read_text())
            assert parent == {"tuning_job": name, "objective": "exact_match"}  # the next run's warm start
    trials = json.loads((tmp_path / "tune" / "trials.json").read_text())
    assert [t["state"] for t in trials] == [
        "infeasible" if best_value >= INFEASIBLE_PENALTY else "complete",
        "infeasible",
        "pruned",
    ]
    assert trials[0]["best"] and trials[0]["params"] == {"learning_rate": 0.0005, "lora_targets": "attention"}


@pytest.mark.parametrize("refit", [False, True])
def test_the_tune_state_is_told_whether_to_refit(tmp_path, refit):
    """The RefitOrEvaluate choice reads ``tuning.refit`` from Prepare's answer: always there, so the choice
    (which cannot catch) never meets a missing field."""
    spec = SPEC.model_copy(update={"tuning": SPEC.tuning.model_copy(update={"refit": refit})})
    training = training_request()
    prepared = prepared_tuning(training, create_training_job(training, AWS), spec, tmp_path.as_uri(), 3600)
    assert prepared is not None and prepared["refit"] is refit
    assert prepared["timeout_seconds"] == 3600 * 3  # 6 trials, 2 at a time


@pytest.mark.parametrize(
    ("recorded", "objective", "warm"),
    [
        ({"objective": "eval_loss"}, "eval_loss", True),
        ({}, "eval_loss", True),  # recorded before objectives were: a loss-optimising parent
        ({"objective": "eval_loss"}, "exact_match", False),
        ({}, "exact_match", False),
        ({"objective": "exact_match"}, "exact_match", True),
    ],
)
def test_a_warm_start_only_from_a_parent_that_optimised_the_same_objective(tmp_path, recorded, objective, warm):
    """AMT seeds the search with the parent's objective values under the same metric name: a loss is not on
    the scale of 1 - exact match."""
    latest = tmp_path / "runs" / "latest"
    latest.mkdir(parents=True)
    (latest / "support-assistant.tuning.json").write_text(json.dumps({"tuning_job": "parent-0", **recorded}))
    spec = SPEC.model_copy(update={"tuning": SPEC.tuning.model_copy(update={"objective": objective})})
    training = training_request()
    prepared = prepared_tuning(training, create_training_job(training, AWS), spec, tmp_path.as_uri(), 3600)
    assert prepared is not None
    assert ("WarmStartConfig" in prepared["job"]) is warm
