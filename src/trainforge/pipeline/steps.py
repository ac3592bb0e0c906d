"""The pipeline's steps, each a function from one contract to the next. The Lambdas and the local runner
call exactly these; only launching the training and evaluation containers differs between them."""

from __future__ import annotations

import json
from typing import Any

from trainforge.aws.sagemaker_requests import placement, volume_size_gb
from trainforge.catalog import ResolvedBase, base_modality, resolve_base_model
from trainforge.contracts import (
    DatasetRef,
    DatasetReport,
    EvaluationReport,
    EvaluationRequest,
    ModelVersion,
    RunFailure,
    RunRequest,
    RunSummary,
    TrainingRequest,
    TrainingResult,
)
from trainforge.custom.model_format import require_hf_folder
from trainforge.custom.request import custom_parts
from trainforge.data.fingerprint import content_fingerprint
from trainforge.errors import SpecInvalid
from trainforge.evaluation.gate import decide
from trainforge.instances import instance_type, smallest_fitting
from trainforge.media.checks import MEDIA_FORMATS
from trainforge.media.manifest import copy_media, read_manifest
from trainforge.pipeline.admission import resolve_data_uri
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.pipeline.planned import planned_vs_actual_at
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.triage import hint_for
from trainforge.registry import ModelRegistry, Registration, approval_for
from trainforge.registry.bom import build_bom
from trainforge.spec import JobSpec
from trainforge.store import join, open_store, pin_version

LINEAGE_FILE = "trainforge.json"
#: the spec with the hyperparameters the run trains with and why each automatic one was chosen
RESOLVED_SPEC_FILE = "resolved_spec.json"
#: what a SageMaker job may take beyond its own bound before the state machine gives up on it: instance
#: provisioning, image pull, data download and the model upload happen outside MaxRuntimeInSeconds
JOB_TIMEOUT_MARGIN_SECONDS = 2 * 3600
#: the longest a training job may run or wait (CreateTrainingJob StoppingCondition: 28 days)
SAGEMAKER_MAX_SECONDS = 28 * 86400


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


def weights_footprint(model_uri: str) -> tuple[int, int]:
    """(bytes of the weight files, bytes per stored parameter) of an HF folder, from the store's listing
    and config.json alone: the Lambdas size volumes and instances without loading anything."""
    store = open_store(model_uri)
    weights = sum(info.size for info in store.list(model_uri.rstrip("/") + "/") if info.uri.endswith(".safetensors"))
    config_uri = join(model_uri, "config.json")
    dtype = str(_read_json(config_uri).get("torch_dtype") or "float32") if store.exists(config_uri) else "float32"
    return weights, 4 if dtype == "float32" else 2


# --- data: the run's channels, and its own copy of each (validation: ``pipeline.validation_fanout``) ------


def dataset_channels(request: RunRequest, spec: JobSpec, data_root: str) -> dict[str, list[tuple[DatasetRef, str]]]:
    """The run's admitted objects by channel, each with its name inside the channel (its path under the
    spec's reference): ``validation`` holds what ``data.validation`` names, ``train`` the rest."""
    references = {"train": resolve_data_uri(data_root, spec.data.train)}
    if spec.data.validation:
        references["validation"] = resolve_data_uri(data_root, spec.data.validation)
    channels: dict[str, list[tuple[DatasetRef, str]]] = {}
    for ref in request.datasets:
        channel = next(
            (name for name in ("validation", "train") if name in references and _under(ref.uri, references[name])),
            "train",
        )
        reference = references[channel]
        name = ref.uri.rsplit("/", 1)[-1] if ref.uri == reference else ref.uri[len(reference.rstrip("/")) + 1 :]
        channels.setdefault(channel, []).append((ref, name))
    return channels


def _under(uri: str, reference: str) -> bool:
    return uri == reference or uri.startswith(reference.rstrip("/") + "/")


def snapshot_channels(request: RunRequest, spec: JobSpec, report: DatasetReport, platform: Platform) -> dict[str, str]:
    """Each channel as a folder of the run's own: the admitted object versions copied there (server-side in
    S3), or, with ``pii: redact``, the redacted copy validation wrote, and beside them the media the records
    name at the versions validation read (the report's manifest). Training and evaluation read only these,
    so an object uploaded or overwritten while the run waits is neither trained unvalidated nor missing from
    the lineage."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    folders = {}
    # a base model's tier says whether its records name media; a folder URI's does not: its spec says
    names_media = spec.data.format in MEDIA_FORMATS or base_modality(spec.base_model) in ("speech", "vision-text")
    manifest = report.media_manifest_uri
    validated = read_manifest(open_store(manifest), manifest) if names_media and manifest else {}
    for channel, refs in dataset_channels(request, spec, platform.data_root).items():
        folder = layout.channel(channel)
        for ref, name in refs:
            source = pin_version(ref.uri, ref.version_id)
            if spec.data.pii != "redact":
                open_store(source).copy(source, join(folder, name))
            if names_media:  # the audio and images the records name, beside them
                copy_media(ref.uri, source, join(folder, name), open_store(source), validated)
        folders[channel] = folder + "/"
    return folders


# --- prepare -------------------------------------------------------------------------------------------


def training_hyperparameters(
    spec: JobSpec, report: DatasetReport, base_model_id: str, spec_hash: str, device: str = "auto"
) -> dict[str, str]:
    """The spec's hyperparameters plus what the pipeline decided, as SageMaker's all-strings mapping."""
    from trainforge.training.config import TrainConfig  # pydantic only: no torch

    return TrainConfig(
        **spec.hyperparameters.model_dump(),
        method=spec.method,
        data_format=report.format or "auto",
        validation_fraction=0.0 if spec.data.validation else spec.data.validation_fraction,
        split_seed=spec.data.split_seed,
        replay_fraction=spec.data.replay_fraction,
        # a tuning trial measures its forgetting and prints the constrained objective (``tuning.objective``)
        max_forgetting=spec.evaluation.max_forgetting if spec.tuning is not None else None,
        selection_fraction=spec.tuning.selection_fraction if spec.tuning is not None else 0.0,
        selection_metric=spec.tuning.objective if spec.tuning is not None else "eval_loss",
        device=device,
        base_model_id=base_model_id,
        spec_sha256=spec_hash,
    ).to_hyperparameters()


def max_wait_seconds(spec: JobSpec) -> int | None:
    """Spot only: capacity wait plus run time, at least the runtime and at most SageMaker's 28 days."""
    if not spec.compute.spot:
        return None
    runtime = spec.compute.max_runtime_hours * 3600
    wanted = spec.compute.max_wait_hours * 3600 if spec.compute.max_wait_hours else 2 * runtime
    return int(min(max(wanted, runtime), SAGEMAKER_MAX_SECONDS))


def resolved_spec(
    request: RunRequest, spec: JobSpec, report: DatasetReport, base_uri: str, platform: Platform
) -> JobSpec:
    """The spec as the run trains it (automatic hyperparameters where it names none, ``tuning.auto``, the
    same decision the Plan step planned), written beside the run's spec as ``resolved_spec.json``."""
    from trainforge.tuning.auto import resolve_spec

    resolved = resolve_spec(spec, report, _read_json(join(base_uri, "config.json")))
    _write_json(RunLayout(platform.artifacts_uri, request.run_id).path(RESOLVED_SPEC_FILE), resolved.record())
    return resolved.spec


def prepare_training(request: RunRequest, spec: JobSpec, report: DatasetReport, platform: Platform) -> TrainingRequest:
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    resolved, base_uri = base_model(spec, platform)
    spec = resolved_spec(request, spec, report, base_uri, platform)
    channels = {**snapshot_channels(request, spec, report, platform), "base_model": base_uri.rstrip("/") + "/"}
    if spec.data.replay_fraction and spec.data.replay:  # the user's own general text to replay
        channels["replay"] = resolve_data_uri(platform.data_root, spec.data.replay)
    if platform.local:
        image, device, environment = "local", "auto", {}
        instance_name, count, spot, volume = "local", 1, False, 0
    else:
        instance = instance_type(spec.compute.instance_type)
        placed = placement(instance, platform.image_uri, platform.neuron_image_uri)
        image, device, environment = placed.image, placed.device, placed.environment
        instance_name, count, spot = instance.name, spec.compute.instance_count, spec.compute.spot
        volume = volume_size_gb(instance, weights_footprint(base_uri)[0])
    if spec.custom is not None:  # your own code: its image, hyperparameters and environment (trainforge.custom)
        parts = custom_parts(
            spec.custom,
            source_uri=resolve_data_uri(platform.data_root, spec.custom.source) if spec.custom.source else None,
            code_uri=layout.path("train", "source"),
            base_model_id=resolved.model_id,
            instance=None if platform.local else instance_type(spec.compute.instance_type),
            region=platform.region,
            account=platform.account,
            prefix=platform.prefix,
        )
        image, environment = parts.image or image, parts.environment
        hyperparameters, channels = parts.hyperparameters, channels | parts.channels
    else:
        hyperparameters = training_hyperparameters(spec, report, resolved.model_id, request.spec_sha256, device)
    training = TrainingRequest(
        run_id=request.run_id,
        job_name=spec.name,
        training_job_name=request.run_id,
        image=image,
        instance_type=instance_name,
        instance_count=count,
        spot=spot,
        max_runtime_seconds=int(spec.compute.max_runtime_hours * 3600),
        max_wait_seconds=max_wait_seconds(spec) if spot else None,
        volume_size_gb=volume,
        channels=channels,
        hyperparameters=hyperparameters,
        environment=environment,
        checkpoint_uri=layout.path("train", "checkpoints"),
        output_uri=layout.path("train", "output"),
    )
    _write_json(layout.path("train", "request.json"), training.model_dump_json(indent=2))
    return training


def job_timeout_seconds(bound_seconds: int) -> int:
    """How long the state machine waits on a job bounded by ``bound_seconds`` (MaxRuntime, or MaxWait for
    spot) before it fails the run; SageMaker itself stops the job at its bound."""
    return bound_seconds + JOB_TIMEOUT_MARGIN_SECONDS


# --- after training: evaluate ----------------------------------------------------------------------------


def _lineage(model_uri: str) -> dict[str, Any]:
    """The model folder's lineage file (the built-in loop writes it; the local runner writes it for a custom
    script); {} for a custom job's model in AWS, whose script wrote none."""
    uri = join(model_uri, LINEAGE_FILE)
    return _read_json(uri) if open_store(uri).exists(uri) else {}


def training_result(
    request: RunRequest,
    model_uri: str,
    platform: Platform,
    *,
    training_job_name: str | None = None,
    billable_seconds: float | None = None,
) -> TrainingResult:
    """What training produced, read from the model folder's lineage file (``model_uri`` is what the job
    reports, DescribeTrainingJob's ModelArtifacts in AWS, never rebuilt from a naming convention)."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    lineage = _lineage(model_uri)
    metrics = {key: float(lineage[key]) for key in ("final_loss", "best_eval_loss") if lineage.get(key) is not None}
    return TrainingResult(
        run_id=request.run_id,
        training_job_name=training_job_name,
        model_uri=model_uri.rstrip("/") + "/",
        metrics=metrics,
        metrics_uri=layout.metrics,
        checkpoint_uri=layout.path("train", "checkpoints"),
        wall_seconds=float(lineage.get("wall_seconds", 0.0)),
        tokens_seen=int(lineage.get("tokens_seen", 0)),
        billable_seconds=billable_seconds,
    )


def evaluation_instance(spec: JobSpec, base_uri: str) -> str:
    """The spec's choice, or the smallest single-GPU type that holds the base and the tuned model in bf16
    with room for activations and generation (evaluation runs one process on one device)."""
    if spec.evaluation.instance_type:
        if instance_type(spec.evaluation.instance_type).accelerator == "neuron":
            raise SpecInvalid("evaluation.instance_type: evaluation runs on a GPU or CPU type, not on Trainium")
        return spec.evaluation.instance_type
    weight_bytes, bytes_per_parameter = weights_footprint(base_uri)
    bf16_gib = weight_bytes / bytes_per_parameter * 2 / 2**30
    return smallest_fitting(2 * bf16_gib * 1.25 + 2).name


def prepare_evaluation(
    request: RunRequest, spec: JobSpec, training: TrainingRequest, result: TrainingResult, platform: Platform
) -> EvaluationRequest:
    """The evaluation job: the tuned model against its base on the held-out examples (the validation
    channel, or the same split training held out), sized from the base model, and its config file. A custom
    job's model without its own evaluation script must be an HF folder the evaluation reads."""
    if spec.custom is not None and spec.custom.evaluation_entry_point is None:
        require_hf_folder(result.model_uri)
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    base_uri = training.channels["base_model"]
    held_out = training.channels.get("validation", training.channels["train"])
    if platform.local:
        image, device, instance_name, environment, volume = "local", "auto", "local", {}, 0
    else:
        instance = instance_type(evaluation_instance(spec, base_uri))
        placed = placement(instance, platform.image_uri, platform.neuron_image_uri)
        image, device, instance_name, environment = placed.image, placed.device, instance.name, placed.environment
        volume = volume_size_gb(instance, weights_footprint(base_uri)[0])
    dataset = _read_json(layout.dataset_report)
    split = None if spec.data.validation else {"seed": spec.data.split_seed, "fraction": spec.data.validation_fraction}
    planned = planned_vs_actual_at(platform.artifacts_uri, request.run_id, result)
    _write_json(
        layout.evaluation_config,
        {
            "run_id": request.run_id,
            "base_model": json.loads(training.hyperparameters["base_model_id"]),
            "tuned_model_uri": result.model_uri,
            "data_format": dataset.get("format"),
            "split": split,
            "device": device,
            "dpo_beta": spec.hyperparameters.dpo_beta,
            "evaluation": spec.evaluation.model_dump(),
            # the report shows them beside its own figures (evaluation/html_report.py)
            "planned_vs_actual": [row.model_dump(mode="json") for row in planned],
            "trials": _trials(layout),
        },
    )
    return EvaluationRequest(
        run_id=request.run_id,
        processing_job_name=f"{request.run_id}-eval",
        image=image,
        instance_type=instance_name,
        inputs={
            "model": result.model_uri,
            "base_model": base_uri,
            "data": held_out,
            "config": layout.evaluation_config.rsplit("/", 1)[0] + "/",
            "metrics": layout.metrics,
        },
        output_uri=layout.evaluation + "/",
        environment=environment,
        max_runtime_seconds=int(spec.evaluation.max_runtime_hours * 3600),
        volume_size_gb=volume,
    )


def _trials(layout: RunLayout) -> list[dict[str, Any]]:
    """A tuned run's trials (``tune/trials.json``, written by either tuner), for the report; [] otherwise."""
    uri = layout.path("tune", "trials.json")
    return list(_read_json(uri)) if open_store(uri).exists(uri) else []


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


# --- register, deploy -------------------------------------------------------------------------------------


def register_model(
    request: RunRequest,
    spec: JobSpec,
    dataset: DatasetReport,
    training: TrainingResult,
    evaluation: EvaluationReport,
    platform: Platform,
    registry: ModelRegistry,
    container: dict[str, Any] | None = None,
) -> ModelVersion:
    """Write the bill of materials and register the model: Approved, PendingManualApproval or Rejected.
    ``container`` is the serving container a SageMaker model package records (LMI or this project's)."""
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    resolved, base_uri = base_model(spec, platform)
    lineage = _lineage(training.model_uri)
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
    history: list[dict[str, Any]] = []  # a custom job's script in AWS keeps none: its figures are CloudWatch's
    if metrics_store.exists(training.metrics_uri):
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
            container=container,
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


def should_deploy(version: ModelVersion, spec: JobSpec) -> bool:
    """The one place that decides whether a registered version is deployed: approved by the gate and the
    spec's approval policy, and a target that is not ``none``. The state machine's DeployOrFinish choice
    and the local runner both read this."""
    return version.approval == "Approved" and spec.deploy.target != "none"


# --- how a run ends ---------------------------------------------------------------------------------------


def record_failure(
    run_id: str,
    state: str,
    error: str,
    cause: str,
    platform: Platform,
    log_uris: list[str] | None = None,
    stopped_jobs: list[str] | None = None,
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
        stopped_jobs=stopped_jobs or [],
        report_uri=report_uri,
        hint=hint_for(error, cause),
    )
    _write_json(layout.failure, failure.model_dump_json(indent=2))
    return failure


def record_outcome(summary: RunSummary, platform: Platform) -> str:
    """Write outcome.json, the run's last word in both modes; returns the one-paragraph message the
    notification carries."""
    layout = RunLayout(platform.artifacts_uri, summary.run_id)
    _write_json(layout.outcome, summary.model_dump_json(indent=2))
    return summary.message(layout.root)
