"""The Validate step as map -> reduce on Step Functions: plan the shards, validate each in its own Lambda
(a Distributed Map over the plan's manifest), merge the partial reports into the run's DatasetReport.

Everything lives under the run's ``validation/`` folder in the artifacts bucket: ``plan.json`` (the shards,
the options, the tokenizer's URI), ``manifest.json`` (the map's items: one small JSON object per shard, so
no item nears the map's 256 KiB input limit) and ``partials/`` (one per shard). The map's ResultWriter
puts the shards' results (counts only) under ``validation-results/`` in the artifacts bucket, out of the
state's 256 KiB payload. The merge reads the partials the plan names, not the map's results, so a shard
that left none is reported, not skipped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainforge.contracts import DatasetReport, RunRequest
from trainforge.data.parallel import validate_parallel
from trainforge.data.partial import load_partials, merge_partials, store_partial, validate_shard
from trainforge.data.report import write_report
from trainforge.data.shards import SHARD_BYTES, ShardPlan, options_from_json, options_to_json, plan_shards
from trainforge.data.validation import ValidationOptions, ValidationProgress
from trainforge.errors import DatasetRejected
from trainforge.media.manifest import write_manifest
from trainforge.pipeline.admission import load_run
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.steps import base_model, dataset_channels
from trainforge.settings import Settings
from trainforge.spec import JobSpec
from trainforge.store import join, open_store, pin_version


class FanOutSettings(BaseSettings):
    """How wide the map runs; the stack sets ``TRAINFORGE_VALIDATION_*`` on the plan function."""

    model_config = SettingsConfigDict(env_prefix="TRAINFORGE_VALIDATION_", frozen=True, extra="ignore")

    shard_bytes: int = SHARD_BYTES
    #: shards validated at once (a Distributed Map runs up to 10,000 child executions in parallel:
    #: https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html); the account's
    #: Lambda concurrency (1,000 by default) is the real bound
    max_concurrency: int = 100
    #: a failed shard is retried by the map; past this share the map fails (0: any failure fails the run)
    tolerated_failure_percentage: float = 0


class ValidationInputs(BaseModel):
    """What a run's validation reads and how: the admitted object versions, the spec's options (the
    redacted copies' destinations included) and the base model's tokenizer, if it has one."""

    model_config = ConfigDict(frozen=True)

    uris: list[str]
    options: dict[str, Any]
    tokenizer_uri: str | None


def validation_inputs(request: RunRequest, spec: JobSpec, platform: Platform) -> ValidationInputs:
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    _, base_uri = base_model(spec, platform)
    redact_into = {
        pin_version(ref.uri, ref.version_id): join(layout.channel(channel), "redacted.jsonl")
        for channel, refs in dataset_channels(request, spec, platform.data_root).items()
        for ref, _ in refs
        if spec.data.pii == "redact"
    }
    tokenizer = join(base_uri, "tokenizer.json")
    return ValidationInputs(
        uris=[pin_version(ref.uri, ref.version_id) for ref in request.datasets],
        options=options_to_json(ValidationOptions.from_spec(spec, redact_into=redact_into)),
        tokenizer_uri=tokenizer if open_store(tokenizer).exists(tokenizer) else None,
    )


class ValidationPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: ValidationInputs
    plan: ShardPlan


def validation_folder(artifacts_uri: str, run_id: str) -> str:
    """The run's ``validation/`` folder: the plan, the manifest and the shards' partial reports."""
    return RunLayout(artifacts_uri, run_id).path("validation")


def plan_uri(artifacts_uri: str, run_id: str) -> str:
    return join(validation_folder(artifacts_uri, run_id), "plan.json")


def _bucket_key(uri: str) -> dict[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return {"bucket": bucket, "key": key}


def plan_validation(request: RunRequest, spec: JobSpec, platform: Platform, fan_out: FanOutSettings) -> dict[str, Any]:
    """Cut the run's data into shards; write the plan and the map's manifest. Returns what the map state
    reads: where the manifest is, where results go, and its concurrency and failure tolerance."""
    inputs = validation_inputs(request, spec, platform)
    options = options_from_json(inputs.options)
    plan = plan_shards(inputs.uris, open_store(inputs.uris[0]), options, fan_out.shard_bytes)
    work = validation_folder(platform.artifacts_uri, request.run_id)
    store = open_store(work)
    manifest_uri = join(work, "manifest.json")
    planned = ValidationPlan(inputs=inputs, plan=plan).model_dump_json().encode()
    store.write_bytes(plan_uri(platform.artifacts_uri, request.run_id), planned, "application/json")
    items = [{"run_id": request.run_id, "shard": shard.index} for shard in plan.shards]
    store.write_bytes(manifest_uri, orjson.dumps(items), "application/json")
    return {
        "manifest": _bucket_key(manifest_uri),
        "shards": len(plan.shards),
        "bytes": plan.data_bytes,
        "max_concurrency": fan_out.max_concurrency,
        "tolerated_failure_percentage": fan_out.tolerated_failure_percentage,
    }


def load_plan(artifacts_uri: str, run_id: str) -> ValidationPlan:
    uri = plan_uri(artifacts_uri, run_id)
    return ValidationPlan.model_validate_json(open_store(uri).read_bytes(uri))


def _options(inputs: ValidationInputs, into: Path) -> ValidationOptions:
    tokenizer = None
    if inputs.tokenizer_uri is not None:
        # in a folder named as the model's: the report names the tokenizer by its folder
        model = inputs.tokenizer_uri.rstrip("/").split("/")[-2]
        tokenizer = into / model / "tokenizer.json"
        open_store(inputs.tokenizer_uri).download_file(inputs.tokenizer_uri, tokenizer)
    return options_from_json(inputs.options, tokenizer_file=tokenizer)


def validate_shard_item(run_id: str, index: int, artifacts_uri: str) -> dict[str, Any]:
    """One map item: validate shard ``index`` of the run's plan and store its partial report. Returns
    counts only (the map's results hold no data)."""
    loaded = load_plan(artifacts_uri, run_id)
    shard = loaded.plan.shards[index]
    with tempfile.TemporaryDirectory() as tmp:
        options = _options(loaded.inputs, Path(tmp))
        work = validation_folder(artifacts_uri, run_id)
        partial = validate_shard(shard, open_store(shard.uri), options, work)
    store_partial(partial, work)
    return {"shard": index, "records": partial.records, "bytes": partial.bytes_read}


def merge_validation(run_id: str, artifacts_uri: str) -> DatasetReport:
    """The reduce: the run's DatasetReport from its shards' partial reports, stored where the whole pass
    stores it; DatasetRejected (naming the report) when the data is not fit to train."""
    loaded = load_plan(artifacts_uri, run_id)
    options = options_from_json(loaded.inputs.options)  # token counts come counted: no tokenizer here
    report = merge_partials(loaded.plan, load_partials(loaded.plan, validation_folder(artifacts_uri, run_id)), options)
    return accept_or_reject(report, RunLayout(artifacts_uri, run_id))


def validate_run_here(
    request: RunRequest,
    spec: JobSpec,
    platform: Platform,
    processes: int | None = None,
    progress: Callable[[ValidationProgress], None] | None = None,
) -> DatasetReport:
    """The Validate step on one machine: the same inputs and the same shards as the map, in a process pool
    (``data.parallel``), the report stored and the data accepted or rejected as the merge does.
    ``progress`` hears the records and bytes validated so far (``validate_parallel``'s)."""
    inputs = validation_inputs(request, spec, platform)
    with tempfile.TemporaryDirectory() as tmp:
        options = _options(inputs, Path(tmp))
        report = validate_parallel(inputs.uris, open_store(inputs.uris[0]), options, processes, progress=progress)
    return accept_or_reject(report, RunLayout(platform.artifacts_uri, request.run_id))


def accept_or_reject(report: DatasetReport, layout: RunLayout) -> DatasetReport:
    """Store the run's dataset report, and beside it the manifest of the media it read (Prepare copies
    those versions); raise DatasetRejected naming the report when the data is not fit to train."""
    store = open_store(layout.root)
    if report.media:
        write_manifest(report.media, store, layout.media_manifest)
        report = report.model_copy(update={"media_manifest_uri": layout.media_manifest})
    report = write_report(report, store, layout.dataset_report)
    if not report.ok:
        counts = ", ".join(f"{code}={n}" for code, n in sorted(report.error_counts.items())) or "PII with pii: reject"
        raise DatasetRejected(f"dataset rejected ({counts}); report: {report.report_uri}", details=report.report_uri)
    return report


# --- the Lambda functions' entry points (functions/plan_validation, validate_shard, merge_validation) ---


class ShardItem(BaseModel):
    """One item of the map's manifest, as the map passes it to validate_shard."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: str
    shard: int


def handle_plan(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    request = RunRequest.model_validate(event["run"])
    spec = load_run(settings.resolved_artifacts_uri(), request.run_id)[1]
    return plan_validation(request, spec, Platform.from_settings(settings, local=False), FanOutSettings())


def handle_shard(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    item = ShardItem.model_validate(event)
    return validate_shard_item(item.run_id, item.shard, settings.resolved_artifacts_uri())


def handle_merge(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    request = RunRequest.model_validate(event["run"])
    return merge_validation(request.run_id, settings.resolved_artifacts_uri()).model_dump(mode="json")
