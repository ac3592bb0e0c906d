"""Continuous evaluation of a deployed endpoint, around the job that scores it
(``trainforge.evaluation.continuous``): what it is given, where its report goes, and what its verdict does.

Inputs: the endpoint record's champion and challenger (their model folders); the newest validated data of
the job (the held-out side of its last successful run, ``runs/latest/NAME.json``); the captured traffic,
each exchange with a reference where its conversation is one of that data's, whose last assistant turn then
is the reference; the serving figures of each variant (locally the server's per-request lines; in AWS
CloudWatch's per-variant metrics). The report lands beside the endpoint's record
(``deployments/NAME/evaluations/STAMP/``) and in the registry (MLflow: a run of the job's experiment with
every figure and its interval, tags on each version), and a failed verdict can roll the challenger back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainforge.contracts import ContinuousEvaluationReport
from trainforge.errors import EvaluationFailed, UsageError
from trainforge.local.file_store import uri_to_path
from trainforge.pipeline.layout import RunLayout, latest_success_uri
from trainforge.serving.capture import CapturedExchange, read_captures
from trainforge.serving.rollout import EndpointRecord
from trainforge.store import open_store

JOB = [sys.executable, "-m", "trainforge.evaluation.continuous"]


def conversation_key(messages: list[dict[str, str]]) -> str:
    return json.dumps([[m["role"], m["content"].strip()] for m in messages])


def references(data_folder: Path, data_format: str) -> dict[str, str]:
    """The newest data's conversations, up to their last assistant turn, mapped to that turn."""
    from trainforge.data.records import load_records
    from trainforge.training.tokenize import as_messages

    if data_format not in ("chat", "bedrock_conversation") or not any(data_folder.rglob("*")):
        return {}
    fmt, records = load_records(data_folder, data_format)
    found = {}
    for record in records:
        messages = as_messages(record, fmt)
        if len(messages) >= 2 and messages[-1]["role"] == "assistant":
            found[conversation_key(messages[:-1])] = messages[-1]["content"]
    return found


def captured_lines(exchanges: list[CapturedExchange], known: dict[str, str]) -> list[dict[str, Any]]:
    """The captured chat exchanges, each with its reference where the data has the same conversation."""
    lines = []
    for exchange in exchanges:
        messages = exchange.messages()
        if messages:
            lines.append(
                {
                    "variant": exchange.variant,
                    "messages": messages,
                    "answer": exchange.answer(),
                    "reference": known.get(conversation_key(messages)),
                }
            )
    return lines


def newest_data(artifacts_uri: str, job: str, into: Path) -> dict[str, Any]:
    """Copy the held-out data of the job's last successful run into ``into``; returns its format and split."""
    latest = latest_success_uri(artifacts_uri, job)
    store = open_store(latest)
    if not store.exists(latest):
        return {"data_format": None, "split": None}
    layout = RunLayout(artifacts_uri, json.loads(store.read_bytes(latest))["run_id"])
    config = json.loads(store.read_bytes(layout.evaluation_config))
    channel = layout.channel("validation") if store.exists(layout.channel("validation")) else layout.channel("train")
    into.mkdir(parents=True, exist_ok=True)
    for info in store.list(channel.rstrip("/") + "/"):
        (into / info.uri.rsplit("/", 1)[-1]).write_bytes(store.read_bytes(info.uri))
    split = None if channel.endswith("validation") else config.get("split")
    return {"data_format": config.get("data_format"), "split": split}


def local_requests(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The local server's per-request lines (``serving.variants.OpsLog``), by variant."""
    requests: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                requests.setdefault(row["variant"], []).append(row)
    return requests


def prepare(
    record: EndpointRecord,
    root: Path,
    artifacts_uri: str,
    exchanges: list[CapturedExchange],
    requests: dict[str, list[dict[str, Any]]],
    *,
    max_examples: int = 200,
    max_new_tokens: int = 32,
) -> Path:
    """The job's input tree under ``root`` (local mode: model folders are copied from file:// URIs)."""
    if record.champion is None:
        raise UsageError(f"endpoint {record.name} has no champion to evaluate")
    inputs = root / "input"
    data = newest_data(artifacts_uri, record.name, inputs / "data")
    roles = [(record.champion, "champion")] + ([(record.challenger, "challenger")] if record.challenger else [])
    for variant, _ in roles:
        shutil.copytree(uri_to_path(variant.model_uri), inputs / f"model-{variant.name}", dirs_exist_ok=True)
    known = references(inputs / "data", data["data_format"] or "")
    (inputs / "captured").mkdir(parents=True, exist_ok=True)
    lines = captured_lines(exchanges, known)
    (inputs / "captured" / "captured.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (inputs / "ops").mkdir(parents=True, exist_ok=True)
    (inputs / "ops" / "ops.json").write_text(json.dumps({v.name: requests.get(v.name, []) for v, _ in roles}))
    config = {
        "endpoint": record.name,
        "variants": [{"name": v.name, "version": v.version, "role": role} for v, role in roles],
        **data,
        "max_examples": max_examples,
        "max_new_tokens": max_new_tokens,
        "seed": 0,
    }
    (inputs / "config").mkdir(parents=True, exist_ok=True)
    (inputs / "config" / "continuous.json").write_text(json.dumps(config, indent=2))
    return root


def run_locally(root: Path) -> ContinuousEvaluationReport:
    log = root / "continuous.log"
    with log.open("wb") as handle:
        code = subprocess.run(
            [*JOB, "--processing-root", str(root)], stdout=handle, stderr=subprocess.STDOUT
        ).returncode
    if code != 0:
        raise EvaluationFailed(f"continuous evaluation exited with {code}; see {log}")
    report = ContinuousEvaluationReport.model_validate_json((root / "output" / "report.json").read_text())
    return report.model_copy(update={"report_uri": (root / "output" / "report.md").as_uri()})


def record_in_mlflow(report: ContinuousEvaluationReport, registry: Any) -> str:
    """One MLflow run per evaluation in the job's experiment: each figure with its interval, per variant, and
    the comparison; each version is tagged with its latest evaluation."""
    from mlflow.entities import Metric, Param, RunTag

    client = registry.client
    found = client.get_experiment_by_name(report.endpoint)
    experiment = found.experiment_id if found is not None else client.create_experiment(report.endpoint)
    run = client.create_run(
        experiment, run_name=f"continuous-{report.created_at:%Y%m%dT%H%M%S}", tags={"trainforge.kind": "continuous"}
    )
    stamp = int(report.created_at.timestamp() * 1000)
    metrics = [
        Metric(f"{v.variant}.{e.name}{suffix}", value, stamp, 0)
        for v in report.variants
        for e in v.metrics
        for suffix, value in (("", e.value), (".ci_low", e.ci_low), (".ci_high", e.ci_high))
    ]
    metrics += [Metric(f"challenger_gain.{c.name}", c.delta, stamp, 0) for c in report.comparisons]
    verdict = "none" if report.verdict is None else ("passed" if report.verdict.passed else "failed")
    params = [Param(f"{v.role}", v.version) for v in report.variants]
    client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("verdict", verdict)])
    if report.report_uri:
        client.log_artifact(run.info.run_id, str(uri_to_path(report.report_uri)))
    client.set_terminated(run.info.run_id)
    for variant in report.variants:
        client.set_model_version_tag(report.endpoint, variant.version, "continuous_evaluation", run.info.run_id)
    return str(run.info.run_id)


def evaluate_local_endpoint(
    name: str, workspace: Path, artifacts_uri: str, *, max_examples: int = 200, max_new_tokens: int = 32
) -> ContinuousEvaluationReport:
    """Prepare, score (the job as a subprocess, as the evaluation job runs locally) and return the report."""
    from trainforge.serving.rollout import load_record

    record = load_record(workspace.resolve().as_uri(), name)
    if record is None:
        raise UsageError(f"no endpoint named {name} has been deployed in {workspace}")
    folder = workspace.resolve() / "deployments" / name
    captures = folder / "capture"
    exchanges = (
        list(read_captures(open_store(captures.as_uri()), (captures / name).as_uri())) if captures.is_dir() else []
    )
    root = folder / "evaluations" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    prepare(
        record,
        root,
        artifacts_uri,
        exchanges,
        local_requests(folder / "metrics"),
        max_examples=max_examples,
        max_new_tokens=max_new_tokens,
    )
    return run_locally(root)
