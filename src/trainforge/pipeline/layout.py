"""Where a run's objects live, in one place, for both roots (s3:// and file://); docs/architecture.md
shows the tree."""

from __future__ import annotations

from dataclasses import dataclass

from trainforge.store import join


@dataclass(frozen=True)
class RunLayout:
    artifacts_uri: str
    run_id: str

    @property
    def root(self) -> str:
        return join(self.artifacts_uri, "runs", self.run_id)

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    @property
    def spec(self) -> str:
        return self.path("spec.json")

    @property
    def request(self) -> str:
        return self.path("request.json")

    @property
    def dataset_report(self) -> str:
        return self.path("dataset-report.json")

    @property
    def media_manifest(self) -> str:
        """The media the valid records name, each at the version validation read (``media/manifest.py``)."""
        return self.path("media-manifest.jsonl")

    @property
    def plan(self) -> str:
        """The plan (``trainforge.planning``): time, cost, memory and deployability, before any compute."""
        return self.path("plan.json")

    @property
    def train(self) -> str:
        return self.path("train")

    def channel(self, name: str) -> str:
        """The run's own copy of a data channel (train, validation): the admitted object versions, or their
        redacted copy. Jobs read these, never the user's prefixes, which may change while the run waits."""
        return self.path("data", name)

    @property
    def metrics(self) -> str:
        """The training metric history: /opt/ml/checkpoints/metrics.jsonl, which SageMaker syncs here."""
        return self.path("train", "checkpoints", "metrics.jsonl")

    @property
    def model(self) -> str:
        return self.path("model")

    @property
    def evaluation(self) -> str:
        return self.path("evaluation")

    @property
    def evaluation_config(self) -> str:
        return self.path("evaluation", "config", "evaluation.json")

    @property
    def bom(self) -> str:
        return self.path("bom.json")

    @property
    def failure(self) -> str:
        return self.path("failure.json")

    @property
    def outcome(self) -> str:
        return self.path("outcome.json")


def latest_success_uri(artifacts_uri: str, job_name: str) -> str:
    """What the retrain schedule compares against: the last successful run of a job and its data."""
    return join(artifacts_uri, "runs", "latest", f"{job_name}.json")
