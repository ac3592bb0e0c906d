"""The pipeline's steps, each a function from one contract to the next. The Lambdas and the local runner
call exactly these; only launching the training and evaluation containers differs between them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from trainforge.catalog import ResolvedBase, resolve_base_model
from trainforge.contracts import (
    DatasetReport,
    Deployment,
    EvaluationReport,
    ModelVersion,
    RunFailure,
    RunRequest,
    TrainingRequest,
    TrainingResult,
)
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.fingerprint import content_fingerprint
from trainforge.data.report import write_report
from trainforge.errors import DatasetRejected
from trainforge.evaluation.gate import decide
from trainforge.pipeline.admission import resolve_data_uri
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.triage import hint_for
from trainforge.registry import ModelRegistry, Registration, approval_for
from trainforge.registry.bom import build_bom
from trainforge.serving.deployers import Deployer
from trainforge.spec import JobSpec
from trainforge.store import join, open_store, pin_version

LINEAGE_FILE = "trainforge.json"


def _write_json(uri: str, payload: str | dict[str, Any]) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload, indent=2, default=str)
    open_store(uri).write_bytes(uri, text.encode(), "application/json")


def _read_json(uri: str) -> Any:
    return json.loads(open_store(uri).read_bytes(uri))


# --- base model --------------------------------------------------------------------------------------


def base_model(spec: JobSpec, platform: Platform) -> tuple[ResolvedBase, str]:
    """The base model's id and the URI of its HF folder (built once into the cache in local mode)."""
    resolved = resolve_base_model(spec.base_model, platform.artifacts_uri, local=platform.local)
    if resolved.uri is not None:
        return resolved, resolved.uri
    from trainforge.training.base_model import materialize  # local mode only: needs the train extra

    return resolved, materialize(resolved, platform.cache_dir / "base-models").as_uri()


def _tokenizer_file(base_uri: str, into: Path) -> Path | None:
    uri = join(base_uri, "tokenizer.json")
    store = open_store(uri)
    if not store.exists(uri):
        return None
    target = into / "tokenizer.json"
    store.download_file(uri, target)
    return target


# --- validate -> prepare -------------------------------------------------------------------------------


def validate_run(request: RunRequest, spec: JobSpec, platform: Platform) -> DatasetReport:
    """Validate every data object of the run, at the admitted versions, with the spec's settings and the
    base model's tokenizer; raise DatasetRejected (naming the report) when the data is not fit to train."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    _, base_uri = base_model(spec, platform)
    with tempfile.TemporaryDirectory() as tmp:
        options = ValidationOptions.from_spec(
            spec,
            tokenizer_file=_tokenizer_file(base_uri, Path(tmp)),
            redacted_uri=layout.path("data", "redacted.jsonl") if spec.data.pii == "redact" else None,
        )
        uris = [pin_version(ref.uri, ref.version_id) for ref in request.datasets]
        report = validate_dataset(uris, open_store(uris[0]), options)
    report = write_report(report, open_store(layout.root), layout.dataset_report)
    if not report.ok:
        counts = ", ".join(f"{code}={n}" for code, n in sorted(report.error_counts.items())) or "PII with pii: reject"
        raise DatasetRejected(f"dataset rejected ({counts}); report: {report.report_uri}", details=report.report_uri)
    return report


def training_hyperparameters(
    spec: JobSpec, report: DatasetReport, base_model_id: str, spec_hash: str
) -> dict[str, str]:
    """The spec's hyperparameters plus what the pipeline decided, as SageMaker's all-strings mapping."""
    from trainforge.training.config import TrainConfig  # pydantic only: no torch

    return TrainConfig(
        **spec.hyperparameters.model_dump(),
        method=spec.method,
        data_format=report.format or "auto",
        validation_fraction=0.0 if spec.data.validation else spec.data.validation_fraction,
        split_seed=spec.data.split_seed,
        base_model_id=base_model_id,
        spec_sha256=spec_hash,
    ).to_hyperparameters()


def prepare_training(request: RunRequest, spec: JobSpec, report: DatasetReport, platform: Platform) -> TrainingRequest:
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    resolved, base_uri = base_model(spec, platform)
    channels = {
        "train": report.redacted_uri or resolve_data_uri(platform.data_root, spec.data.train),
        "base_model": base_uri.rstrip("/") + "/",
    }
    if spec.data.validation:
        channels["validation"] = resolve_data_uri(platform.data_root, spec.data.validation)
    training = TrainingRequest(
        run_id=request.run_id,
        job_name=spec.name,
        training_job_name=request.run_id,
        image=platform.image_uri,
        instance_type="local" if platform.local else spec.compute.instance_type,
        instance_count=1 if platform.local else spec.compute.instance_count,
        spot=False if platform.local else spec.compute.spot,
        max_runtime_seconds=int(spec.compute.max_runtime_hours * 3600),
        channels=channels,
        sagemaker_channels=[
            {
                "ChannelName": name,
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, uri in channels.items()
        ],
        hyperparameters=training_hyperparameters(spec, report, resolved.model_id, request.spec_sha256),
        checkpoint_uri=layout.path("train", "checkpoints"),
        output_uri=layout.path("train", "output"),
    )
    _write_json(layout.path("train", "request.json"), training.model_dump_json(indent=2))
    evaluation_data = channels.get("validation", channels["train"])
    split = None if spec.data.validation else {"seed": spec.data.split_seed, "fraction": spec.data.validation_fraction}
    _write_json(
        layout.path("evaluation", "config", "evaluation.json"),
        {
            "run_id": request.run_id,
            "base_model": resolved.model_id,
            "data_format": report.format,
            "split": split,
            "data_uri": evaluation_data,
            "evaluation": spec.evaluation.model_dump(),
        },
    )
    return training


# --- after training and evaluation ------------------------------------------------------------------------


def training_result(request: RunRequest, model_uri: str, platform: Platform) -> TrainingResult:
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    lineage = _read_json(join(model_uri, LINEAGE_FILE))
    metrics = {key: float(lineage[key]) for key in ("final_loss", "best_eval_loss") if lineage.get(key) is not None}
    return TrainingResult(
        run_id=request.run_id,
        model_uri=model_uri.rstrip("/") + "/",
        metrics=metrics,
        metrics_uri=layout.metrics,
        checkpoint_uri=layout.path("train", "checkpoints"),
        wall_seconds=float(lineage.get("wall_seconds", 0.0)),
        tokens_seen=int(lineage.get("tokens_seen", 0)),
    )


def read_evaluation(request: RunRequest, spec: JobSpec, platform: Platform) -> EvaluationReport:
    """The evaluation job's report, with the gate decided from it and the spec's thresholds."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    report_uri = join(layout.evaluation, "report.json")
    report = EvaluationReport.model_validate(_read_json(report_uri))
    report = report.model_copy(
        update={
            "verdict": decide(report, spec.evaluation),
            "report_uri": report_uri,
            "html_uri": join(layout.evaluation, "report.html"),
        }
    )
    _write_json(report_uri, report.model_dump_json(indent=2))
    return report


def register_model(
    request: RunRequest,
    spec: JobSpec,
    dataset: DatasetReport,
    training: TrainingResult,
    evaluation: EvaluationReport,
    platform: Platform,
    registry: ModelRegistry,
) -> ModelVersion:
    """Write the bill of materials and register the model: Approved, PendingManualApproval or Rejected."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    resolved, base_uri = base_model(spec, platform)
    lineage = _read_json(join(training.model_uri, LINEAGE_FILE))
    base_sha = lineage.get("base_sha256") or ""
    bom = build_bom(
        request,
        dataset,
        training,
        evaluation,
        base_model_id=resolved.model_id,
        base_model_sha256=base_sha,
        spec=spec.model_dump(mode="json"),
        image=None if platform.local else platform.image_uri,
    )
    _write_json(layout.bom, bom)
    passed = bool(evaluation.verdict and evaluation.verdict.passed)
    approval = approval_for(passed, spec.deploy.approval)
    metrics_store = open_store(training.metrics_uri)
    history = [
        json.loads(line)
        for line in metrics_store.read_bytes(training.metrics_uri).decode().splitlines()
        if line.strip()
    ]
    local_files = []
    if platform.local:
        from trainforge.local.file_store import uri_to_path

        local_files = [
            str(uri_to_path(uri))
            for uri in (evaluation.report_uri, evaluation.html_uri, layout.bom, dataset.report_uri)
            if uri
        ]
    version = registry.register(
        Registration(
            run_id=request.run_id,
            name=spec.name,
            model_uri=training.model_uri,
            evaluation=evaluation,
            approval=approval,
            bom_uri=layout.bom,
            params={
                **json.loads(json.dumps(lineage.get("hyperparameters", {}))),
                "base_model": resolved.model_id,
                "base_uri": base_uri,
            },
            history=history,
            artifacts=local_files,
            report_uri=evaluation.report_uri,
        )
    )
    if passed:
        _write_json(
            latest_success_uri(platform.artifacts_uri, spec.name),
            {
                "run_id": request.run_id,
                "datasets": [d.model_dump() for d in request.datasets],
                "fingerprint": content_fingerprint(dataset.sha256.values()),
            },
        )
    return version


def deploy_model(version: ModelVersion, spec: JobSpec, deployer: Deployer | None) -> Deployment:
    if spec.deploy.target == "none" or deployer is None:
        return Deployment(run_id=version.run_id, target="none", status="Skipped: deploy.target is none")
    if version.approval != "Approved":
        return Deployment(
            run_id=version.run_id, target=spec.deploy.target, status=f"Skipped: model version is {version.approval}"
        )
    return deployer.deploy(version)


def record_failure(
    run_id: str, state: str, error: str, cause: str, platform: Platform, log_uris: list[str] | None = None
) -> RunFailure:
    """Write failure.json beside everything the run produced (nothing is deleted) and say what to try."""
    layout = RunLayout(platform.artifacts_uri, run_id)
    store = open_store(layout.root)
    report_uri = layout.dataset_report if store.exists(layout.dataset_report) else None
    failure = RunFailure(
        run_id=run_id,
        state=state,
        error=error,
        cause=cause[:8000],
        log_uris=log_uris or [],
        report_uri=report_uri,
        hint=hint_for(error, cause),
    )
    _write_json(layout.failure, failure.model_dump_json(indent=2))
    return failure
