"""Continuous evaluation on captured traffic: an endpoint serving a champion and a challenger 50/50 captures
its requests (the local server's capture and per-request figures); `trainforge evaluate-endpoint` re-scores
both versions on the job's newest validated data and on the captured prompts that data answers, and
reports each figure per variant with its 95% interval, the challenger against the champion, a verdict, and
an MLflow run."""

from __future__ import annotations

import json
import random

import pytest
from starlette.testclient import TestClient

from tests.conftest import chat
from tests.integration.test_parity import registration
from trainforge.cli import main
from trainforge.contracts import ContinuousEvaluationReport
from trainforge.serving.capture import CaptureWriter
from trainforge.serving.rollout import EndpointRecord, Variant, save_record
from trainforge.serving.variants import Layout, OpsLog, VariantRouter

QA = [
    ("hello how are you", "i am fine thank you"),
    ("where is my order", "your order has shipped"),
    ("what is the capital of france", "paris is the capital of france"),
    ("please reset my password", "the reset link is in your email"),
]


@pytest.fixture
def served(tmp_path, tiny_model_dir):
    """Versions 1 (champion) and 2 (challenger: always answers ' france') behind the local router, 40
    requests captured, the job's newest data in its last successful run."""
    from tests.taught import saying
    from trainforge.registry.mlflow import MLflowRegistry
    from trainforge.serving.app import create_app
    from trainforge.serving.engine import Engine
    from trainforge.settings import Settings

    settings = Settings(workspace=tmp_path / "ws")
    workspace = settings.workspace.resolve()
    run = workspace / "artifacts" / "runs" / "run2"
    (run / "data" / "validation").mkdir(parents=True)
    (run / "data" / "validation" / "validation.jsonl").write_text(
        "".join(json.dumps(chat(f"{q} {i}", a)) + "\n" for i in range(5) for q, a in QA)
    )
    (run / "evaluation" / "config").mkdir(parents=True)
    (run / "evaluation" / "config" / "evaluation.json").write_text(json.dumps({"data_format": "chat", "split": None}))
    (workspace / "artifacts" / "runs" / "latest").mkdir()
    (workspace / "artifacts" / "runs" / "latest" / "support.json").write_text(json.dumps({"run_id": "run2"}))

    folders = {"1": tiny_model_dir, "2": saying(tiny_model_dir, tmp_path / "v2", " france")}
    registry = MLflowRegistry(settings.resolved_mlflow_uri(), artifact_root=workspace / "mlflow-artifacts")
    for n, folder in folders.items():
        registry.register(registration(f"run{n}", folder))
    variants = [
        Variant(name=f"v{n}", version=n, run_id=f"run{n}", model_uri=folder.as_uri(), weight=50)
        for n, folder in folders.items()
    ]
    record = EndpointRecord(
        name="support", variants=tuple(variants), champion=variants[0], challenger=variants[1], capture_percent=100
    )
    save_record(workspace.as_uri(), record)
    folder = workspace / "deployments" / "support"
    router = VariantRouter(
        Layout(record, {v.name: create_app(Engine(folders[v.version], name="support")) for v in variants}),
        capture=CaptureWriter(folder / "capture", "support", 100, None, random.Random(0)),
        ops=OpsLog(folder / "metrics"),
        rng=random.Random(1),
    )
    with TestClient(router) as client:
        for i in range(40):  # half of them conversations the newest data answers, half not
            question = f"{QA[i % 4][0]} {i % 5}" if i % 2 == 0 else f"something new {i}"
            body = {"messages": [{"role": "user", "content": question}], "max_tokens": 4}
            assert client.post("/invocations", json=body).status_code == 200
    return settings, registry


@pytest.mark.slow  # the job runs in its own process, as the evaluation job does (torch, two models): ~60 s here
def test_a_run_on_captured_traffic_reports_each_variant_with_intervals(served):
    settings, registry = served
    code = main(["evaluate-endpoint", "support", "--workspace", str(settings.workspace), "--max-examples", "20"])
    (report_file,) = (settings.workspace.resolve() / "deployments" / "support" / "evaluations").glob(
        "*/output/report.json"
    )
    report = ContinuousEvaluationReport.model_validate_json(report_file.read_text())
    by_variant = {v.variant: {e.name: e for e in v.metrics} for v in report.variants}
    assert [(v.variant, v.role) for v in report.variants] == [("v1", "champion"), ("v2", "challenger")]
    for figures in by_variant.values():
        assert {
            "data_perplexity",
            "token_f1",
            "rouge_l",
            "served_token_f1",
            "latency_ms",
            "error_rate",
            "tokens_per_s",
        } <= set(figures)
        assert all(e.ci_low <= e.value <= e.ci_high for e in figures.values())
        assert figures["data_perplexity"].n == 20 and figures["token_f1"].n == 20  # 20 captured prompts have references
        assert figures["error_rate"].value == 0 and figures["error_rate"].ci_high > 0  # Wilson: never [0, 0]
    assert by_variant["v1"]["latency_ms"].n + by_variant["v2"]["latency_ms"].n == 40
    compared = {c.name: c for c in report.comparisons}
    assert {"data_perplexity", "token_f1", "latency_ms", "error_rate"} <= set(compared)
    # the challenger's boosted ' france' costs it most of its probability on real answers: worse beyond doubt
    assert compared["data_perplexity"].ci_high < 0 and not report.verdict.passed and code == 1
    assert "data_perplexity: the challenger is worse" in report.verdict.reasons[0]
    (run,) = registry.client.search_runs(
        [registry.client.get_experiment_by_name("support").experiment_id], "tags.`trainforge.kind` = 'continuous'"
    )
    assert run.data.tags["verdict"] == "failed" and "v2.data_perplexity.ci_high" in run.data.metrics
    assert registry.client.get_model_version("support", "2").tags["continuous_evaluation"] == run.info.run_id


def test_captured_traffic_becomes_chat_records_the_validator_accepts(served, tmp_path):
    """`trainforge capture` turns each answered exchange into a chat record: the conversation and the answer
    the endpoint gave, PII already redacted by the local capture."""
    from trainforge.data import ValidationOptions, validate_dataset
    from trainforge.store import open_store

    settings, _ = served
    out = tmp_path / "captured.jsonl"
    assert main(["capture", "support", "--workspace", str(settings.workspace), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    answers = [r["messages"][-1] for r in records]
    assert 0 < len(records) <= 40 and all(a["role"] == "assistant" and a["content"].strip() for a in answers)
    report = validate_dataset([out.as_uri()], open_store(out.as_uri()), ValidationOptions())
    assert report.ok and report.format == "chat" and report.records == len(records), report.errors
