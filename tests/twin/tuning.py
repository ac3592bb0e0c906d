"""CreateHyperParameterTuningJob, run: after moto records the request, the tuning job starts its trials as the
twin's own training jobs (``tests.twin.training``: the real container, the request's MetricDefinitions over
its log), and Describe / List / Stop answer from what those trials did
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeHyperParameterTuningJob.html).

- Trials: up to ``ResourceLimits.MaxNumberOfTrainingJobs``, at most ``MaxParallelTrainingJobs`` at a time,
  each a CreateTrainingJob (held to the same rules as any other) built from the ``TrainingJobDefinition``:
  its fields that CreateTrainingJob takes, ``StaticHyperParameters`` plus one value per ParameterRange.
  A trial is named ``<tuning job>-<NNN>-<8 hex>`` (e.g. ``xgboost-190407-1532-005-0e830ada``), within
  TrainingJobName's 63 characters
  (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_HyperParameterTrainingJobSummary.html).
  The twin adds no ``_tuning_objective_metric``: the SageMaker Python SDK puts that key into the
  StaticHyperParameters it sends (its ``attach`` deletes it from a described job's StaticHyperParameters as
  "reserved by SageMaker for tuning jobs":
  https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/tuner.py); a request written
  without the SDK, as the state machine's is, reaches the trials without it.
- Values: the twin draws them with a random generator seeded by ``RandomSeed`` (else the job's name), per
  ScalingType (Linear, Logarithmic, ReverseLogarithmic; Auto as Linear): a random search, not AMT's Bayesian
  strategy, which is AWS's own. Tests may rely on the ranges being honoured, not on which values come out.
- Objective: each trial's ``FinalMetricDataList`` value for the objective's MetricName (the latest value
  the regex matched, as AMT keeps it:
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_FinalHyperParameterTuningJobObjectiveMetric.html);
  ObjectiveStatus Pending while the trial runs, Succeeded when it completed with that metric, else Failed.
  BestTrainingJob is the Succeeded trial with the lowest (Minimize) or highest (Maximize) value.
- Status: Completed once every trial ended and at least one objective Succeeded, else Failed (the reason is
  the twin's own words: AWS's wording for a tuning job none of whose trials succeeded is not documented).
  StopHyperParameterTuningJob stops the running trials (StopTrainingJob's SIGTERM) and starts no more; the
  job is Stopping, then Stopped.
- Not modelled: early stopping (``TrainingJobEarlyStoppingType`` Auto is accepted and no trial is stopped
  early), ``MaxRuntimeInSeconds`` (accepted within its range, never enforced), ``TuningJobCompletionCriteria``
  (so the rules refuse a job without ``MaxNumberOfTrainingJobs``, which AWS accepts), ``RetryStrategy`` (a
  failed trial counts as NonRetryableError), Hyperband and Grid strategies, ``TrainingJobDefinitions`` (several definitions), OverallBestTrainingJob
  and TuningJobCompletionDetails (left out of Describe). ``WarmStartConfig`` is
  accepted as the rules allow and its parents must exist (ResourceNotFound otherwise, as
  https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-warm-start.html requires a parent
  tuning job); the parents' trials do not inform the draws (with a random search there is nothing to
  transfer).
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from moto.core.utils import get_service_model

from tests.twin import storage
from tests.twin.jobs import Background, now

if TYPE_CHECKING:
    from tests.twin.twin import SageMakerTwin

#: TrainingJobStatusCounters' and ObjectiveStatusCounters' keys, each reported even when zero
TRAINING_COUNTERS = ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped")
OBJECTIVE_COUNTERS = ("Succeeded", "Pending", "Failed")
#: a trial's training status -> its TrainingJobStatusCounters key
COUNTED_AS = {
    "InProgress": "InProgress",
    "Stopping": "InProgress",
    "Completed": "Completed",
    "Stopped": "Stopped",
    "Failed": "NonRetryableError",
}
#: TrainingJobDefinition keys that are the tuning job's own, not a CreateTrainingJob's
_TUNING_ONLY = frozenset({"StaticHyperParameters", "HyperParameterRanges", "TuningObjective", "DefinitionName"})


def _training_fields() -> frozenset[str]:
    """The request fields CreateTrainingJob takes (botocore's model of the API)."""
    model = get_service_model("sagemaker")
    return frozenset(model.operation_model("CreateTrainingJob").input_shape.members)


class Ranges:
    """ParameterRanges drawn with a seeded generator: one dict of string values per trial."""

    def __init__(self, ranges: dict[str, list[dict[str, Any]]], seed: int | str) -> None:
        self.ranges = ranges
        self.random = random.Random(seed)

    def draw(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in self.ranges.get("IntegerParameterRanges", []):
            low, high = int(item["MinValue"]), int(item["MaxValue"])
            values[item["Name"]] = str(min(high, max(low, round(self._scaled(item, low, high)))))
        for item in self.ranges.get("ContinuousParameterRanges", []):
            values[item["Name"]] = repr(self._scaled(item, float(item["MinValue"]), float(item["MaxValue"])))
        for item in self.ranges.get("CategoricalParameterRanges", []):
            values[item["Name"]] = self.random.choice(item["Values"])
        return values

    def _scaled(self, item: dict[str, Any], low: float, high: float) -> float:
        """A value in [low, high] on the range's scale (the rules have checked Logarithmic has low > 0 and
        ReverseLogarithmic high < 1: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContinuousParameterRange.html)."""
        scaling = item.get("ScalingType", "Auto")
        if scaling == "Logarithmic":
            return math.exp(self.random.uniform(math.log(low), math.log(high)))
        if scaling == "ReverseLogarithmic":
            return 1 - math.exp(self.random.uniform(math.log(1 - high), math.log(1 - low)))
        return self.random.uniform(low, high)


class TuningJob(Background):
    """One HyperParameterTuningJob: its trials run in a thread of their own, its state on moto's record."""

    def __init__(self, twin: SageMakerTwin, request: dict[str, Any], record: Any, region: str) -> None:
        if "TrainingJobDefinition" not in request:
            raise NotImplementedError("the twin runs tuning jobs with one TrainingJobDefinition")
        super().__init__(f"twin-tuning-{request['HyperParameterTuningJobName']}")
        self.twin = twin
        self.request = request
        self.record = record
        self.region = region
        self.name: str = request["HyperParameterTuningJobName"]
        config = request["HyperParameterTuningJobConfig"]
        self.objective: dict[str, str] = config["HyperParameterTuningJobObjective"]
        self.limits: dict[str, int] = config["ResourceLimits"]
        self.ranges = Ranges(config.get("ParameterRanges", {}), config.get("RandomSeed", self.name))
        self.trials: list[str] = []  # the trials' names, in the order they started
        self.tuned: dict[str, dict[str, str]] = {}  # trial -> its drawn values
        self.stopping = threading.Event()
        self.publish(
            hyper_parameter_tuning_job_status="InProgress",
            hyper_parameter_tuning_end_time=None,
            failure_reason=None,
            best_training_job=None,
            OverallBestTrainingJob=None,  # moto's attribute name; not modelled (see above)
            tuning_job_completion_details=None,
            consumed_resources=None,
        )
        self._count()

    @property
    def status(self) -> str:
        return str(self.record.hyper_parameter_tuning_job_status)

    def finish_failed(self, reason: str) -> None:
        self._end("Failed", reason)

    # --- the trials
    def run(self) -> None:
        client = storage.client("sagemaker", self.region)
        definition = self.request["TrainingJobDefinition"]
        fields = _training_fields() - {"TrainingJobName", "HyperParameters"}
        base = {key: value for key, value in definition.items() if key in fields and key not in _TUNING_ONLY}
        total, parallel = int(self.limits["MaxNumberOfTrainingJobs"]), int(self.limits["MaxParallelTrainingJobs"])
        while len(self.trials) < total and not self.stopping.is_set():
            if self._running() >= parallel:
                time.sleep(0.2)
                continue
            name = f"{self.name}-{len(self.trials) + 1:03d}-{self.ranges.random.getrandbits(32):08x}"
            values = self.ranges.draw()
            self.tuned[name] = values
            client.create_training_job(
                TrainingJobName=name,
                HyperParameters={**definition.get("StaticHyperParameters", {}), **values},
                **base,
            )
            self.trials.append(name)
            self.twin.training_jobs[name].publish(tuning_job_arn=self.record.arn)
            self._count()
        while self._running():
            time.sleep(0.2)
            self._count()
        self._count()
        if self.stopping.is_set():
            self._end("Stopped")
        elif self.record.best_training_job is None:
            self._end("Failed", f"No training job of {self.name} reported its objective {self.objective['MetricName']}")
        else:
            self._end("Completed")

    def _running(self) -> int:
        return sum(self.twin.training_jobs[name].status in ("InProgress", "Stopping") for name in self.trials)

    def _end(self, status: str, reason: str | None = None) -> None:
        self._count()
        self.publish(
            hyper_parameter_tuning_job_status=status,
            failure_reason=reason,
            hyper_parameter_tuning_end_time=now(),
        )

    def stop(self) -> None:
        """StopHyperParameterTuningJob: no more trials; the running ones stop."""
        self.stopping.set()
        self.publish(hyper_parameter_tuning_job_status="Stopping")
        for name in self.trials:
            trial = self.twin.training_jobs[name]
            if trial.status == "InProgress":
                trial.stop()

    # --- what Describe and List read
    def summary(self, name: str) -> dict[str, Any]:
        """A trial as HyperParameterTrainingJobSummary has it."""
        trial = self.twin.training_jobs[name].record
        status = trial.training_job_status
        metric = next(
            (m for m in trial.final_metric_data_list or [] if m["MetricName"] == self.objective["MetricName"]), None
        )
        if status in ("InProgress", "Stopping"):
            objective_status = "Pending"
        else:
            objective_status = "Succeeded" if status == "Completed" and metric is not None else "Failed"
        summary: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": trial.arn,
            "TuningJobName": self.name,
            "CreationTime": trial.creation_time,
            "TrainingJobStatus": status,
            "TunedHyperParameters": dict(self.tuned[name]),
            "ObjectiveStatus": objective_status,
        }
        optional = {
            "TrainingStartTime": trial.training_start_time,
            "TrainingEndTime": trial.training_end_time,
            "FailureReason": getattr(trial, "failure_reason", None),
        }
        summary |= {key: value for key, value in optional.items() if value}
        if metric is not None and objective_status == "Succeeded":
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.objective["Type"],
                "MetricName": metric["MetricName"],
                "Value": metric["Value"],
            }
        return summary

    def summaries(self) -> list[dict[str, Any]]:
        return [self.summary(name) for name in list(self.trials)]

    def _count(self) -> None:
        """The counters and the best trial so far, onto the record."""
        summaries = self.summaries()
        training = dict.fromkeys(TRAINING_COUNTERS, 0)
        objectives = dict.fromkeys(OBJECTIVE_COUNTERS, 0)
        for summary in summaries:
            training[COUNTED_AS[summary["TrainingJobStatus"]]] += 1
            objectives[summary["ObjectiveStatus"]] += 1
        scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
        sign = 1 if self.objective["Type"] == "Minimize" else -1
        best = min(scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], default=None)
        self.publish(
            training_job_status_counters=training,
            objective_status_counters=objectives,
            best_training_job=best,
        )
