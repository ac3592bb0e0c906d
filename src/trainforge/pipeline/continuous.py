"""Continuous evaluation of a deployed endpoint, around the job that scores it
(``trainforge.evaluation.continuous``): what it is given, where its report goes, and what its verdict does.

Inputs: the endpoint record's champion and challenger (their model folders); the newest validated data of
the job (the held-out side of its last successful run, ``runs/latest/NAME.json``); the captured traffic,
each exchange with a reference where its conversation is one of that data's, whose last assistant turn then
is the reference; the serving figures of each variant (locally the server's per-request lines; in AWS
CloudWatch's per-variant metrics). The report lands beside the endpoint's record
(``deployments/NAME/evaluations/STAMP/``) and in the registry (MLflow: a run of the job's experiment with
every figure and its interval, tags on each version; in AWS each model package's metadata), and a failed
verdict can roll the challenger back. Both modes build the same input files (``job_files``); locally the job
runs as a subprocess, in AWS as a processing job (``continuous_handlers``).
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
from trainforge.serving.rollout import EndpointRecord, Variant
from trainforge.store import join, open_store

JOB = [sys.executable, "-m", "trainforge.evaluation.continuous"]


def captures_uri(name: str, *, artifacts_uri: str | None = None, workspace: Path | None = None) -> str:
    """Where endpoint ``name``'s captured traffic is: SageMaker's data capture under the artifacts root in
    AWS, the local server's under the workspace (both ``.../NAME/VARIANT/yyyy/mm/dd/hh/``)."""
    if artifacts_uri is not None:
        return join(artifacts_uri, "capture", name)
    assert workspace is not None, "captures_uri needs the artifacts root or the workspace"
    return (workspace.resolve() / "deployments" / name / "capture" / name).as_uri()


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


def newest_data_source(artifacts_uri: str, job: str) -> tuple[str | None, dict[str, Any]]:
    """The folder of the held-out data of the job's last successful run (None: no run succeeded yet), and its
    format and split (the split evaluation applied, where the run held out part of its train channel)."""
    latest = latest_success_uri(artifacts_uri, job)
    store = open_store(latest)
    if not store.exists(latest):
        return None, {"data_format": None, "split": None}
    layout = RunLayout(artifacts_uri, json.loads(store.read_bytes(latest))["run_id"])
    config = json.loads(store.read_bytes(layout.evaluation_config))
    # a channel is a folder locally and a key prefix in S3, where only objects "exist"
    validation = layout.channel("validation") + "/"
    channel = validation if next(iter(store.list(validation)), None) else layout.channel("train") + "/"
    split = None if channel == validation else config.get("split")
    return channel, {"data_format": config.get("data_format"), "split": split}


def newest_data(artifacts_uri: str, job: str, into: Path) -> dict[str, Any]:
    """Copy the held-out data of the job's last successful run into ``into``; returns its format and split."""
    channel, data = newest_data_source(artifacts_uri, job)
    into.mkdir(parents=True, exist_ok=True)
    if channel is not None:
        store = open_store(channel)
        for info in store.list(channel):
            (into / info.uri.rsplit("/", 1)[-1]).write_bytes(store.read_bytes(info.uri))
    return data


def local_requests(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The local server's per-request lines (``serving.variants.OpsLog``), by variant."""
    requests: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                requests.setdefault(row["variant"], []).append(row)
    return requests


def roles(record: EndpointRecord) -> list[tuple[Variant, str]]:
    """The versions a run scores: the champion, and the challenger if there is one."""
    if record.champion is None:
        raise UsageError(f"endpoint {record.name} has no champion to evaluate")
    return [(record.champion, "champion")] + ([(record.challenger, "challenger")] if record.challenger else [])


def job_files(
    record: EndpointRecord,
    data: dict[str, Any],
    lines: list[dict[str, Any]],
    requests: dict[str, list[dict[str, Any]]],
    *,
    max_examples: int,
    max_new_tokens: int,
) -> dict[str, str]:
    """The job's input files other than the models and the data, by their path under ``input/``."""
    scored = roles(record)
    config = {
        "endpoint": record.name,
        "variants": [{"name": v.name, "version": v.version, "role": role} for v, role in scored],
        **data,
        "max_examples": max_examples,
        "max_new_tokens": max_new_tokens,
        "seed": 0,
    }
    return {
        "captured/captured.jsonl": "".join(json.dumps(line) + "\n" for line in lines),
        "ops/ops.json": json.dumps({v.name: requests.get(v.name, []) for v, _ in scored}),
        "config/continuous.json": json.dumps(config, indent=2),
    }


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
    inputs = root / "input"
    data = newest_data(artifacts_uri, record.name, inputs / "data")
    for variant, _ in roles(record):
        shutil.copytree(uri_to_path(variant.model_uri), inputs / f"model-{variant.name}", dirs_exist_ok=True)
    lines = captured_lines(exchanges, references(inputs / "data", data["data_format"] or ""))
    files = job_files(record, data, lines, requests, max_examples=max_examples, max_new_tokens=max_new_tokens)
    for relative, text in files.items():
        (inputs / relative).parent.mkdir(parents=True, exist_ok=True)
        (inputs / relative).write_text(text)
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
    captures = captures_uri(name, workspace=workspace)
    exchanges = list(read_captures(open_store(captures), captures)) if (folder / "capture").is_dir() else []
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


# --- serving figures from CloudWatch (AWS) ------------------------------------------------------------------

#: per variant: query id, SageMaker's endpoint metric, statistic
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-endpoint-invocation)
SERVING_METRICS = (
    ("invocations", "Invocations", "Sum"),
    ("errors4xx", "Invocation4XXErrors", "Sum"),
    ("errors5xx", "Invocation5XXErrors", "Sum"),
    ("latency", "ModelLatency", "Average"),  # microseconds
)
#: at most this many request rows per variant reach the job (a day of a busy endpoint is millions)
MAX_REQUEST_ROWS = 10_000


def cloudwatch_series(
    client: Any, endpoint: str, variants: list[str], start: datetime, end: datetime, period: int = 300
) -> dict[str, dict[datetime, dict[str, float]]]:
    """Each variant's SERVING_METRICS per ``period`` seconds (GetMetricData, every page), by period start."""
    queries = [
        {
            "Id": f"{key}_{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": variant},
                    ],
                },
                "Period": period,
                "Stat": statistic,
            },
            "ReturnData": True,
        }
        for index, variant in enumerate(variants)
        for key, metric, statistic in SERVING_METRICS
    ]
    series: dict[str, dict[datetime, dict[str, float]]] = {variant: {} for variant in variants}
    for page in client.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end
    ):
        for result in page["MetricDataResults"]:
            key, index = result["Id"].rsplit("_", 1)
            periods = series[variants[int(index)]]
            for when, value in zip(result["Timestamps"], result["Values"], strict=True):
                periods.setdefault(when, {})[key] = float(value)
    return series


def completion_tokens(exchanges: list[CapturedExchange]) -> dict[str, float]:
    """Per variant, the mean completion tokens of its captured answers that report usage (OpenAI's
    ``usage.completion_tokens``): CloudWatch counts requests, not tokens."""
    counts: dict[str, list[int]] = {}
    for exchange in exchanges:
        usage = exchange.response.get("usage") if isinstance(exchange.response, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            counts.setdefault(exchange.variant, []).append(usage["completion_tokens"])
    return {variant: sum(values) / len(values) for variant, values in counts.items()}


def cloudwatch_requests(
    series: dict[str, dict[datetime, dict[str, float]]], tokens: dict[str, float]
) -> dict[str, list[dict[str, Any]]]:
    """CloudWatch's per-period figures as the request rows the job reads (what the local server logs per
    request): each period's requests, its 5XX and 4XX errors among them, each at the period's mean model
    latency, and the variant's mean captured completion tokens where captures report them. Within a period
    the latencies are the same, so the latency interval reflects variation between periods only. Above
    MAX_REQUEST_ROWS the periods are sampled in proportion, which keeps the means and the error rate and
    widens their intervals to those of the sample."""
    requests: dict[str, list[dict[str, Any]]] = {}
    for variant, periods in series.items():
        total = sum(int(p.get("invocations", 0)) for p in periods.values())
        scale = min(1.0, MAX_REQUEST_ROWS / total) if total else 1.0
        timed = [(int(p.get("invocations", 0)), p["latency"]) for p in periods.values() if "latency" in p]
        # a period whose every request failed has no model latency: its requests get the variant's mean
        mean_latency = sum(n * v for n, v in timed) / max(sum(n for n, _ in timed), 1)
        rows: list[dict[str, Any]] = []
        for _, figures in sorted(periods.items()):
            count = int(figures.get("invocations", 0))
            if count == 0:
                continue
            kept = max(1, round(count * scale))
            server_errors = min(int(figures.get("errors5xx", 0)), count)
            server = round(server_errors * kept / count)
            client = min(
                round(min(int(figures.get("errors4xx", 0)), count - server_errors) * kept / count), kept - server
            )
            row: dict[str, Any] = {"latency_ms": figures.get("latency", mean_latency) / 1000}
            if variant in tokens:
                row["completion_tokens"] = tokens[variant]
            statuses = [500] * server + [400] * client + [200] * (kept - server - client)
            rows += [{"status": status, **row} for status in statuses]
        requests[variant] = rows
    return requests
