"""MLflowRegistry: one MLflow run per pipeline run (params, metric history, reports as artifacts) and a
registered model version per trained model. The ``champion`` alias moves only when the gate passed and
the version is Approved, so ``models:/NAME@champion`` always means the best approved model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trainforge.contracts import ModelVersion
from trainforge.registry.base import Approval, Registration

CHAMPION = "champion"


class MLflowRegistry:
    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # schema migrations log at INFO on first use
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _experiment(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        location = (self.artifact_root / name).resolve().as_uri() if self.artifact_root else None
        return str(self.client.create_experiment(name, artifact_location=location))

    def register(self, registration: Registration) -> ModelVersion:
        from mlflow.entities import Metric, Param, RunTag

        experiment = self._experiment(registration.name)
        run = self.client.create_run(
            experiment, run_name=registration.run_id, tags={"trainforge.run_id": registration.run_id}
        )
        run_id = run.info.run_id
        params = [Param(key, str(value)[:6000]) for key, value in sorted(registration.params.items())]
        metrics = [
            Metric(key, float(value), 0, int(record.get("step", 0)))
            for record in registration.history
            for key, value in record.items()
            if key in ("loss", "eval_loss", "tokens_per_s", "lr")
        ]
        evaluation = registration.evaluation
        probes = evaluation.probes or ([evaluation.forgetting] if evaluation.forgetting else [])
        for comparison in [*evaluation.metrics, *probes]:
            metrics += [
                Metric(f"eval.{comparison.name}.base", comparison.base, 0, 0),
                Metric(f"eval.{comparison.name}.tuned", comparison.tuned, 0, 0),
                Metric(f"eval.{comparison.name}.delta", comparison.delta, 0, 0),
            ]
        verdict = registration.evaluation.verdict
        tags = [
            RunTag("gate", "passed" if verdict and verdict.passed else "failed"),
            RunTag("bom_uri", registration.bom_uri),
        ]
        for start in range(0, max(len(metrics), 1), 900):  # MLflow caps a batch at 1000 entries
            self.client.log_batch(
                run_id,
                metrics=metrics[start : start + 900],
                params=params if start == 0 else [],
                tags=tags if start == 0 else [],
            )
        for artifact in registration.artifacts:
            self.client.log_artifact(run_id, artifact)
        self._log_trials(experiment, run_id, registration)
        self.client.set_terminated(run_id)
        if not self._registered(registration.name):
            self.client.create_registered_model(registration.name, description="Trained by TrainForge")
        version = self.client.create_model_version(
            registration.name,
            source=registration.model_uri,
            run_id=run_id,
            tags={"run_id": registration.run_id, "approval": registration.approval, "bom_uri": registration.bom_uri},
        )
        result = self._as_contract(registration.name, version)
        if registration.approval == "Approved":
            self.client.set_registered_model_alias(registration.name, CHAMPION, version.version)
        return result

    def _log_trials(self, experiment: str, parent: str, registration: Registration) -> None:
        """A tuned run's trials as child runs of its run (MLflow's ``mlflow.parentRunId`` tag): each with its
        settings, objective and forgetting, its state and whether it was chosen."""
        from mlflow.entities import Metric, Param, RunTag

        for trial in registration.evaluation.trials:
            child = self.client.create_run(
                experiment,
                run_name=f"{registration.run_id}-trial-{trial.number}",
                tags={"mlflow.parentRunId": parent, "trainforge.run_id": registration.run_id},
            )
            figures = {"objective": trial.objective, "forgetting": trial.forgetting}
            self.client.log_batch(
                child.info.run_id,
                metrics=[Metric(key, float(value), 0, 0) for key, value in figures.items() if value is not None],
                params=[Param(key, str(value)) for key, value in sorted(trial.params.items())],
                tags=[RunTag("trial.state", trial.state), RunTag("trial.chosen", str(trial.best).lower())],
            )
            self.client.set_terminated(child.info.run_id, "FINISHED" if trial.state != "failed" else "FAILED")

    def _registered(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def _as_contract(self, name: str, version: Any) -> ModelVersion:
        tags = version.tags or {}
        return ModelVersion(
            run_id=tags.get("run_id", ""),
            registry="mlflow",
            name=name,
            version=str(version.version),
            arn=None,
            approval=tags.get("approval", "PendingManualApproval"),
            model_uri=version.source,
            bom_uri=tags.get("bom_uri", ""),
        )

    def set_approval(self, version: ModelVersion, approval: Approval) -> ModelVersion:
        self.client.set_model_version_tag(version.name, version.version, "approval", approval)
        if approval == "Approved":
            self.client.set_registered_model_alias(version.name, CHAMPION, version.version)
        return version.model_copy(update={"approval": approval})

    def versions(self, name: str) -> list[ModelVersion]:
        found = self.client.search_model_versions(f"name = '{name}'")
        return sorted((self._as_contract(name, v) for v in found), key=lambda v: int(v.version))

    def champion(self, name: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._as_contract(name, self.client.get_model_version_by_alias(name, CHAMPION))
        except MlflowException:
            return None

    def model_names(self) -> list[str]:
        return sorted(model.name for model in self.client.search_registered_models())
