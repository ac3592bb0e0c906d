"""The local runner end to end on a tiny model: the same steps as the state machine, on this machine."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import chat
from trainforge.pipeline.local_runner import SUCCESS_PATH, LocalRunner
from trainforge.settings import Settings

QA = [
    ("what is the capital of france", "paris is the capital of france"),
    ("please reset my password", "the reset link is in your email"),
    ("where is my order", "your order has shipped and will arrive on monday"),
    ("hello how are you", "i am fine thank you"),
]
SPEC = """name: support
base_model: {base}
method: full
data: {{train: datasets/support/train.jsonl, validation_fraction: 0.2}}
hyperparameters: {{max_steps: 30, batch_size: 8, max_seq_len: 64, learning_rate: 0.005, eval_every: 10, checkpoint_every: 10}}
evaluation: {{min_improvement: {min_improvement}, max_forgetting: 100.0, max_examples: 50, generation_samples: 2, max_new_tokens: 8}}
deploy: {{target: local}}
"""


def workspace(
    tmp_path: Path, base: str = "tiny", min_improvement: float = 0.05, rows: list | None = None
) -> tuple[Settings, Path]:
    data = tmp_path / "ws" / "data"
    (data / "jobs").mkdir(parents=True)
    (data / "datasets" / "support").mkdir(parents=True)
    rows = rows if rows is not None else [chat(f"{q} {i}", a) for i, (q, a) in ((i, QA[i % 4]) for i in range(80))]
    (data / "datasets" / "support" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "jobs" / "support.yaml").write_text(SPEC.format(base=base, min_improvement=min_improvement))
    return Settings(workspace=tmp_path / "ws", data_uri=data.as_uri()), data / "jobs" / "support.yaml"


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def runner_factory():
    made = []

    def make(settings: Settings) -> LocalRunner:
        from trainforge.serving.deployers.local import free_port

        runner = LocalRunner(settings, port=free_port(18000))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner._deployer().stop("support")


def test_end_to_end_run_gate_registry_and_endpoint(tmp_path, runner_factory):
    settings, spec = workspace(tmp_path)
    runner = runner_factory(settings)
    outcome = runner.run(spec)
    assert outcome.status == "succeeded", outcome.failure
    assert outcome.steps == list(SUCCESS_PATH)
    assert outcome.evaluation.verdict.passed and outcome.evaluation.metrics[0].delta > 0.05
    versions = runner._registry().versions("support")
    assert [(v.version, v.approval) for v in versions] == [("1", "Approved")]
    assert runner._registry().champion("support").version == "1"
    reply = httpx.post(
        f"{outcome.deployment.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "where is my order"}], "max_tokens": 8},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    for name in (
        "spec.json",
        "request.json",
        "dataset-report.json",
        "dataset-report.md",
        "bom.json",
        "outcome.json",
        "model/model.safetensors",
        "evaluation/report.json",
        "evaluation/report.html",
        "train/checkpoints/metrics.jsonl",
        "train/logs/train.log",
    ):
        assert (outcome.run_dir / name).is_file(), name
    # the same spec and data again: the same run id, nothing re-run
    again = runner.run(spec)
    assert again.reused and again.run_id == outcome.run_id


def test_failed_run_keeps_logs_report_and_reason_and_never_touches_the_data(tmp_path, tiny_model_dir, runner_factory):
    broken = tmp_path / "broken-base"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    settings, spec = workspace(tmp_path, base=broken.as_uri())
    data = Path(settings.data_uri.removeprefix("file://"))
    before = tree_digest(data)
    outcome = runner_factory(settings).run(spec)
    assert outcome.status == "failed"
    failure = json.loads((outcome.run_dir / "failure.json").read_text())
    assert failure["state"] == "Train" and failure["error"] == "TrainingFailed"
    assert failure["report_uri"].endswith("dataset-report.json") and (outcome.run_dir / "dataset-report.json").is_file()
    assert (
        any(uri.endswith("train.log") for uri in failure["log_uris"])
        and (outcome.run_dir / "train" / "logs" / "train.log").stat().st_size > 0
    )
    assert tree_digest(data) == before


def test_rejected_dataset_and_gate_failure(tmp_path, runner_factory):
    bad_rows = [chat("a", "b"), {"messages": [{"role": "user", "content": "no answer"}]}]
    settings, spec = workspace(tmp_path / "bad", rows=bad_rows)
    outcome = runner_factory(settings).run(spec)
    assert outcome.status == "failed" and outcome.steps == ["PlanValidation", "MergeValidation"]
    assert outcome.failure.error == "DatasetRejected" and "dataset-report.json" in outcome.failure.cause
    settings, spec = workspace(tmp_path / "strict", min_improvement=5.0)  # 500% better: impossible
    runner = runner_factory(settings)
    outcome = runner.run(spec)
    assert outcome.status == "rejected" and outcome.deployment is None
    assert [v.approval for v in runner._registry().versions("support")] == ["Rejected"]
    assert runner._registry().champion("support") is None


def test_watch_runs_a_dropped_spec_once(tmp_path, runner_factory):
    from rich.console import Console

    from trainforge.pipeline.watch import scan

    settings, spec = workspace(tmp_path)
    data_root = spec.parent.parent
    runner = runner_factory(settings)
    seen: dict = {}
    first = scan(runner, data_root, seen, Console(quiet=True))
    assert len(first) == 1 and (runner.platform.artifacts_uri.endswith("artifacts"))
    assert scan(runner, data_root, seen, Console(quiet=True)) == []  # nothing changed: nothing runs
    spec.write_text(spec.read_text())  # touched, same content and data: the same run id, reused
    again = scan(runner, data_root, seen, Console(quiet=True))
    assert again == first
