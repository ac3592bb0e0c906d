"""SageMaker Automatic Model Tuning: the CreateHyperParameterTuningJob request the state machine's Tune state
sends, and what the run keeps of the finished tuning job.

The trials are this project's own training jobs: the same image, channels, role, network and stopping
condition as a single run's CreateTrainingJob (``aws.sagemaker_requests``), the static hyperparameters
being the run's resolved ones less those the search varies. The objective is the constrained one the
container prints at its end (``tuning.objective``), so AMT's "best training job" is the best feasible one
whenever any is feasible; :func:`best_job` refuses a best job that is itself infeasible.

Warm start: a job's previous tuning job (recorded per job name under ``runs/latest/``) is the parent, with
``TransferLearning`` since the data may have changed since
(https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-warm-start.html); only a parent
that optimised the same ``tuning.objective``, since AMT seeds the search with the parent's objective values
under the same metric name, and a loss (about 0.3-3) is not on the scale of 1 - exact match (0-1).
"""

from __future__ import annotations

import json
import math
from typing import Any

from trainforge.contracts import SelectionMetric, TrainingRequest, TrialSummary
from trainforge.spec import JobSpec
from trainforge.store import join, open_store
from trainforge.tuning.objective import INFEASIBLE_PENALTY, OBJECTIVE_METRIC, metric_definitions
from trainforge.tuning.space import Param, amt_ranges, trial_space

#: HyperParameterTuningJobName: 1-32 characters
#: (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateHyperParameterTuningJob.html), less
#: the "-N" (or "-wN", warm-started) the Tune states append per attempt
NAME_LENGTH = 32 - 3
#: the training job fields a tuning job's definition takes from CreateTrainingJob's body
#: (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_HyperParameterTrainingJobDefinition.html).
#: Not CheckpointConfig: its one S3Uri would serve every trial, and the loop resumes whatever it finds in
#: /opt/ml/checkpoints (another trial's state, another LoRA rank); AWS documents no per-trial prefix. So a
#: spot trial whose instance is reclaimed restarts from its first step, and a trial's metrics.jsonl stays in
#: its container (the objective and metrics reach AMT through the log).
_DEFINITION_FIELDS = (
    "RoleArn",
    "InputDataConfig",
    "Environment",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "VpcConfig",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
)


def tuning_job_name(run_id: str) -> str:
    """The run id's job name cut so that it, its 12-hex hash and the attempt's suffix fit 32 characters."""
    job, _, digest = run_id.rpartition("-")
    return f"{job[: NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def _every_setting(hyperparameters: dict[str, str]) -> dict[str, str]:
    """``hyperparameters`` with each setting it leaves out (None: ``max_steps`` on an epoch-bound run) as
    ``"null"``, which the container reads back as None. A warm start needs the parent's count of static plus
    tuned hyperparameters
    (https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-warm-start.html#warm-start-tuning-restrictions),
    and the settings left out move with the spec (a run bound by steps tunes ``max_steps``, one bound by
    epochs ``epochs``): with every setting named, the count does not."""
    from trainforge.training.config import TrainConfig  # pydantic only

    return {name: "null" for name in TrainConfig.model_fields} | hyperparameters


def create_tuning_job(
    training_job: dict[str, Any],
    space: dict[str, Param],
    spec: JobSpec,
    run_id: str,
    parent: str | None = None,
) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request for ``training_job`` (a CreateTrainingJob body)."""
    assert spec.tuning is not None
    every = _every_setting(training_job["HyperParameters"])
    static = {name: value for name, value in every.items() if name not in space}
    algorithm = dict(training_job["AlgorithmSpecification"])
    algorithm["MetricDefinitions"] = [*algorithm.get("MetricDefinitions", []), *metric_definitions()]
    config: dict[str, Any] = {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": OBJECTIVE_METRIC},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": spec.tuning.max_jobs,
            "MaxParallelTrainingJobs": min(spec.tuning.parallel, spec.tuning.max_jobs),
        },
        "ParameterRanges": amt_ranges(space),
        "TrainingJobEarlyStoppingType": "Auto" if spec.tuning.early_stopping else "Off",
        "RandomSeed": spec.hyperparameters.seed,
    }
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": tuning_job_name(run_id),
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": algorithm,
            **{key: training_job[key] for key in _DEFINITION_FIELDS if key in training_job},
        },
        "Tags": training_job["Tags"],
    }
    if parent is not None and spec.tuning.warm_start:
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}],
            "WarmStartType": "TransferLearning",
        }
    return request


def best_job(described: dict[str, Any], max_forgetting: float) -> str:
    """The best training job of a finished tuning job (DescribeHyperParameterTuningJob), refused when even
    it is over the forgetting budget (its objective carries the infeasible penalty)."""
    from trainforge.tuning.local import InfeasibleStudy

    best = described.get("BestTrainingJob")
    if not best:
        raise InfeasibleStudy(
            f"tuning job {described.get('HyperParameterTuningJobName')} has no best training job "
            f"(status {described.get('HyperParameterTuningJobStatus')}): no trial reported its objective"
        )
    value = float(best.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", INFEASIBLE_PENALTY))
    if value >= INFEASIBLE_PENALTY:
        raise InfeasibleStudy(
            f"no feasible trial: the best of tuning job {described.get('HyperParameterTuningJobName')} forgot more "
            f"than evaluation.max_forgetting ({max_forgetting:.1%}) allows (objective {value:.4f} includes the "
            f"{INFEASIBLE_PENALTY:g} penalty); raise max_forgetting, set data.replay_fraction, or narrow tuning.ranges"
        )
    return str(best["TrainingJobName"])


def trials_from_jobs(summaries: list[dict[str, Any]], best: str, metric: SelectionMetric) -> list[TrialSummary]:
    """ListTrainingJobsForHyperParameterTuningJob's summaries as the report's trials (forgetting is in each
    job's own log and metrics; AMT keeps the objective only)."""
    trials = []
    ordered = sorted(summaries, key=lambda s: str(s.get("CreationTime", "")))
    for number, job in enumerate(ordered):
        final = job.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        value = final.get("Value")
        status = job.get("TrainingJobStatus")
        if status == "Completed" and value is not None:
            state = "infeasible" if float(value) >= INFEASIBLE_PENALTY else "complete"
        elif status == "Stopped":
            state = "pruned"
        else:
            state = "failed"
        trials.append(
            TrialSummary(
                number=number,
                state=state,
                params={k: _number(v) for k, v in (job.get("TunedHyperParameters") or {}).items()},
                objective=None if value is None else float(value),
                metric=metric,
                best=job.get("TrainingJobName") == best,
                job_name=job.get("TrainingJobName"),
            )
        )
    return trials


def _number(value: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value.strip('"')


def _parent_uri(artifacts_uri: str, job_name: str) -> str:
    """Where a job's last tuning job is recorded, for the next run's warm start."""
    return join(artifacts_uri, "runs", "latest", f"{job_name}.tuning.json")


def prepared_tuning(
    training: TrainingRequest, training_job: dict[str, Any], spec: JobSpec, artifacts_uri: str, job_timeout: int
) -> dict[str, Any] | None:
    """What the Tune state sends (its request and how long it may take: the trials in waves of ``parallel``,
    each as long as one training job may), or None for a spec without ``tuning``."""
    if spec.tuning is None:
        return None
    uri = _parent_uri(artifacts_uri, spec.name)
    store = open_store(uri)
    record = json.loads(store.read_bytes(uri)) if store.exists(uri) else {}
    # a record from before objectives were recorded is a loss-optimising parent
    same_objective = record.get("objective", "eval_loss") == spec.tuning.objective
    parent = record.get("tuning_job") if same_objective else None
    request = create_tuning_job(training_job, trial_space(training, spec), spec, training.run_id, parent)
    waves = math.ceil(spec.tuning.max_jobs / min(spec.tuning.parallel, spec.tuning.max_jobs))
    # the RefitOrEvaluate choice reads refit: the best trial's settings trained again (``tuning.refit``)
    return {"job": request, "timeout_seconds": job_timeout * waves, "refit": spec.tuning.refit}


def finish_tuning(client: Any, tuning_job: str, spec: JobSpec, artifacts_uri: str, trials_uri: str) -> str:
    """After the Tune state: the best training job's name (InfeasibleStudy when even it forgot too much), the
    trials written for the report, and this tuning job recorded as the job's next warm-start parent."""
    described = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    summaries = [
        summary
        for page in client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=tuning_job
        )
        for summary in page["TrainingJobSummaries"]
    ]
    best = (described.get("BestTrainingJob") or {}).get("TrainingJobName", "")
    assert spec.tuning is not None
    trials = trials_from_jobs(summaries, best, spec.tuning.objective)
    open_store(trials_uri).write_bytes(
        trials_uri, json.dumps([t.model_dump() for t in trials], indent=2).encode(), "application/json"
    )
    name = best_job(described, spec.evaluation.max_forgetting)
    parent = _parent_uri(artifacts_uri, spec.name)
    record = {"tuning_job": tuning_job, "objective": spec.tuning.objective}
    open_store(parent).write_bytes(parent, json.dumps(record).encode(), "application/json")
    return name
