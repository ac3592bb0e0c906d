"""The local runner: the state machine's steps, in the state machine's order, with local adapters.

Workspace folder instead of buckets, ``trainforge-train``/``trainforge-evaluate`` as subprocesses on the
/opt/ml contract instead of SageMaker jobs, MLflow on SQLite as the registry, a local HTTP server as the
endpoint. ``steps`` records the ASL state names it passed, so a test can hold the two paths equal.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainforge.contracts import (
    DatasetReport,
    Deployment,
    EvaluationReport,
    EvaluationRequest,
    ModelVersion,
    PlannedActual,
    RunFailure,
    RunSummary,
    TrainingRequest,
    TrainingResult,
    Trigger,
)
from trainforge.errors import TrainForgeError
from trainforge.local.file_store import uri_to_path
from trainforge.pipeline import steps
from trainforge.pipeline.admission import admit, record_admission
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.plan_step import plan_run
from trainforge.pipeline.planned import planned_vs_actual_at
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.progress import ValidationBar
from trainforge.pipeline.validation_fanout import validate_run_here
from trainforge.settings import Settings
from trainforge.spec import JobSpec
from trainforge.tuning.local import StudyResult, adopt_best
from trainforge.tuning.refit import refit_request

#: the Task states of the ASL's success path, in order; the local runner passes the same ones
SUCCESS_PATH = (
    "PlanValidation",
    "MergeValidation",
    "Plan",
    "Prepare",
    "Train",
    "PrepareEvaluation",
    "Evaluate",
    "ReadEvaluation",
    "Register",
    "Deploy",
    "RecordOutcome",
    "Notify",
)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    run_dir: Path
    steps: list[str] = field(default_factory=list)
    dataset: DatasetReport | None = None
    training: TrainingResult | None = None
    evaluation: EvaluationReport | None = None
    version: ModelVersion | None = None
    deployment: Deployment | None = None
    failure: RunFailure | None = None
    wall_seconds: float = 0.0
    reused: bool = False
    planned: list[PlannedActual] = field(default_factory=list)

    def summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            status=self.status,  # type: ignore[arg-type]
            steps=self.steps,
            wall_seconds=round(self.wall_seconds, 1),
            gate=self.evaluation.verdict if self.evaluation else None,
            metrics=self.evaluation.metrics if self.evaluation else [],
            forgetting=self.evaluation.forgetting if self.evaluation else None,
            model_version=self.version,
            deployment=self.deployment,
            failure=self.failure,
            planned=self.planned,
        )


class LocalRunner:
    def __init__(
        self, settings: Settings, console: Console | None = None, port: int = 8000, api_key: str | None = None
    ) -> None:
        self.settings = settings
        self.platform = Platform.from_settings(settings, local=True)
        self.console = console or Console(stderr=True)
        self.port = port
        self.api_key = api_key

    def _registry(self) -> Any:
        from trainforge.registry.mlflow import MLflowRegistry

        return MLflowRegistry(
            self.settings.resolved_mlflow_uri(), artifact_root=self.settings.workspace.resolve() / "mlflow-artifacts"
        )

    def _deployer(self) -> Any:
        from trainforge.serving.deployers.local import LocalDeployer

        return LocalDeployer(self.settings.workspace.resolve(), port=self.port, api_key=self.api_key)

    def _deploy(self, version: ModelVersion, spec: JobSpec) -> Deployment:
        """Stage, check parity, release under the spec's rollout policy (``pipeline.rollout``)."""
        from trainforge.pipeline.rollout import MLflowAliases, deploy

        aliases = MLflowAliases(self._registry())
        return deploy(version, spec, self._deployer(), aliases, self.platform.artifacts_uri)

    def run(self, spec_path: Path, trigger: Trigger = "cli", force: bool = False) -> RunOutcome:
        started = time.time()
        spec_uri = spec_path.resolve().as_uri()
        request, spec = admit(
            spec_uri, spec_path.read_bytes(), None, self.platform.data_root, self.platform.artifacts_uri, trigger
        )
        layout = RunLayout(self.platform.artifacts_uri, request.run_id)
        run_dir = uri_to_path(layout.root)
        if uri_to_path(layout.outcome).is_file() and not force:
            previous = json.loads(uri_to_path(layout.outcome).read_text())
            self.console.print(
                f"run [bold]{request.run_id}[/] already ran for this spec and data ({previous['status']}); nothing to do"
            )
            return RunOutcome(request.run_id, previous["status"], run_dir, previous.get("steps", []), reused=True)
        if force and run_dir.exists():
            shutil.rmtree(run_dir)
        record_admission(request, spec, self.platform.artifacts_uri)
        outcome = RunOutcome(request.run_id, "running", run_dir)
        self.console.print(f"run [bold]{request.run_id}[/] ({spec.name}, base {spec.base_model}, {spec.method})")
        try:
            outcome.steps.append("PlanValidation")  # the shards a process pool validates here, as the map does
            bar = ValidationBar(self.console)
            outcome.dataset = self._step(
                outcome, "MergeValidation", lambda: validate_run_here(request, spec, self.platform, progress=bar), bar
            )
            dataset = outcome.dataset
            self._step(outcome, "Plan", lambda: plan_run(request, spec, dataset, self.platform))
            training_request = self._step(
                outcome, "Prepare", lambda: steps.prepare_training(request, spec, dataset, self.platform)
            )
            if spec.tuning is not None:  # a search instead of one job: its best feasible trial makes the model
                outcome.steps.append("Tune")
                study = self._tune(training_request, spec, layout)
                if spec.tuning.refit:  # the chosen settings once more, on the whole training side
                    tuned = training_request
                    training_request = self._step(
                        outcome,
                        "PrepareRefit",
                        lambda: refit_request(
                            tuned, study.hyperparameters, study.model_step, spec, f"trial {study.best.number}"
                        ),
                    )
                    self.console.print(
                        f"  refit: trial {study.best.number}'s settings on the whole training side, "
                        f"{training_request.hyperparameters['max_steps']} steps (its model: step {study.model_step})"
                    )
                    outcome.steps.append("Train")
                    model_dir = self._train(training_request, layout, spec)
                else:
                    model_dir = adopt_best(study, uri_to_path(layout.model), uri_to_path(layout.metrics))
            else:
                outcome.steps.append("Train")
                model_dir = self._train(training_request, layout, spec)
            training = outcome.training = self._step(
                outcome, "PrepareEvaluation", lambda: steps.training_result(request, model_dir.as_uri(), self.platform)
            )
            evaluation_request = steps.prepare_evaluation(request, spec, training_request, training, self.platform)
            outcome.steps.append("Evaluate")
            self._evaluate(layout, evaluation_request, spec, training_request)
            evaluation = outcome.evaluation = self._step(
                outcome, "ReadEvaluation", lambda: steps.read_evaluation(request, spec, self.platform)
            )
            version = outcome.version = self._step(
                outcome,
                "Register",
                lambda: steps.register_model(
                    request, spec, dataset, training, evaluation, self.platform, self._registry()
                ),
            )
            if evaluation.verdict is not None and evaluation.verdict.passed:
                if steps.should_deploy(version, spec):
                    outcome.deployment = self._step(outcome, "Deploy", lambda: self._deploy(version, spec))
                outcome.status = "succeeded"
            else:
                outcome.status = "rejected"
            outcome.steps.append("RecordOutcome")
        except TrainForgeError as exc:
            outcome.status = "failed"
            logs = [str(p) for p in sorted(run_dir.rglob("*.log"))]
            failed_state = outcome.steps[-1] if outcome.steps else "Admit"
            outcome.failure = steps.record_failure(
                request.run_id, failed_state, type(exc).__name__, str(exc), self.platform, logs
            )
        outcome.wall_seconds = time.time() - started
        outcome.planned = planned_vs_actual_at(self.platform.artifacts_uri, request.run_id, outcome.training)
        steps.record_outcome(outcome.summary(), self.platform)
        if outcome.status != "failed":
            outcome.steps.append("Notify")
        return outcome

    def _step(
        self, outcome: RunOutcome, name: str, action: Any, display: AbstractContextManager[Any] | None = None
    ) -> Any:
        """Run one state's action under a spinner, or under ``display`` where the step shows its own bar."""
        outcome.steps.append(name)
        with display or self.console.status(f"{name} ..."):
            result = action()
        self.console.print(f"[green]✓[/] {name}")
        return result

    def _venv_cache(self) -> Path:
        from trainforge.custom.venvs import default_cache

        return self.platform.venv_cache or default_cache()

    def _train(self, request: TrainingRequest, layout: RunLayout, spec: JobSpec) -> Path:
        from trainforge.custom.runner import run_script_training
        from trainforge.local.launcher import run_training_job

        columns = [
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task("train", total=None, loss="-", rate="-")

            def on_record(record: dict[str, Any]) -> None:
                if "loss" in record and "step" in record:
                    progress.update(
                        task,
                        completed=record["step"],
                        total=record.get("total_steps"),
                        loss=f"{record['loss']:.4f}",
                        rate=f"{record.get('tokens_per_s', 0):.0f}",
                    )
                elif "eval_loss" in record:
                    exact = record.get("eval_exact_match")
                    also = "" if exact is None else f", exact match {exact:.3f}"
                    progress.console.print(f"  step {record['step']}: eval_loss {record['eval_loss']:.4f}{also}")
                elif record.get("event") == "precision":
                    progress.console.print(f"  {record.get('reason')}")
                elif record.get("event") == "data":
                    progress.console.print(
                        f"  data: {record.get('examples')} examples -> {record.get('sequences')} packed sequences, padding waste {record.get('padding_waste', 0):.1%}"
                    )

            if spec.custom is not None:  # your own script, on the same /opt/ml contract (trainforge.custom)
                return run_script_training(
                    request,
                    spec.custom,
                    uri_to_path(layout.train),
                    uri_to_path(layout.model),
                    self._venv_cache(),
                    on_record,
                )
            return run_training_job(request, uri_to_path(layout.train), uri_to_path(layout.model), on_record)

    def _tune(self, request: TrainingRequest, spec: JobSpec, layout: RunLayout) -> StudyResult:
        """The Optuna study (``tuning.local``), one line per trial; its best feasible trial."""
        from trainforge.contracts import TrialSummary, objective_label
        from trainforge.tuning.local import run_study

        def on_trial(trial: TrialSummary) -> None:
            forgetting = "-" if trial.forgetting is None else f"{trial.forgetting:+.1%}"
            value = "-" if trial.objective is None else f"{trial.objective:.4f}"
            label = objective_label([trial])
            self.console.print(f"  trial {trial.number}: {trial.state}, {label} {value}, forgetting {forgetting}")

        assert spec.tuning is not None
        with self.console.status(f"tuning: {spec.tuning.max_jobs} trials ..."):
            result = run_study(request, spec, uri_to_path(layout.path("tune")), on_trial)
        self.console.print(f"  best trial {result.best.number}: {result.best.params}")
        return result

    def _evaluate(
        self, layout: RunLayout, request: EvaluationRequest, spec: JobSpec, training: TrainingRequest
    ) -> None:
        from trainforge.custom.runner import run_script_evaluation
        from trainforge.local.launcher import run_evaluation_job

        config_dir = request.inputs["config"]
        config = json.loads((uri_to_path(config_dir) / "evaluation.json").read_text())
        inputs = {name: uri_to_path(uri) for name, uri in request.inputs.items() if name != "config"}
        processing = uri_to_path(layout.path("evaluation", "processing"))
        names: tuple[str, ...] = ("report.json", "report.html", "parity.json")
        with self.console.status("evaluating tuned vs base ..."):
            if spec.custom is not None and spec.custom.evaluation_entry_point is not None:
                train_root, cache = uri_to_path(layout.train), self._venv_cache()
                output = run_script_evaluation(
                    spec.custom, train_root, processing, inputs, config, cache, training.hyperparameters
                )
                names = ("report.json", "report.html")  # no parity reference: such a model is not deployed
            else:
                output = run_evaluation_job(processing, inputs, config)
        for name in names:
            shutil.copyfile(output / name, uri_to_path(request.output_uri) / name)
        self.console.print("[green]✓[/] Evaluate")
