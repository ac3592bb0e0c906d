"""`trainforge-train` as SageMaker runs it: a subprocess against an /opt/ml tree; every contract file checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import chat
from trainforge.local.opt_ml import prepare_training_tree
from trainforge.training.config import TrainConfig


def run_container(root: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "trainforge-train"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trainforge.training.entrypoint"]
    return subprocess.run([*command, "--opt-ml", str(root), "train"], capture_output=True, text=True, timeout=300)


def test_success_writes_model_checkpoints_and_metrics(tmp_path, tiny_model_dir):
    train = tmp_path / "train"
    train.mkdir()
    (train / "part-1.jsonl").write_text(
        "\n".join(json.dumps(chat(f"q{i}", "answer is paris")) for i in range(30)) + "\n"
    )
    validation = tmp_path / "validation"
    validation.mkdir()
    (validation / "val.jsonl").write_text(json.dumps(chat("q", "answer is paris")) + "\n")
    hyper = TrainConfig(
        max_steps=4, batch_size=2, max_seq_len=64, checkpoint_every=2, eval_every=2, lora_rank=2
    ).to_hyperparameters()
    root = prepare_training_tree(
        tmp_path / "opt" / "ml", {"train": train, "validation": validation, "base_model": tiny_model_dir}, hyper
    )
    result = run_container(root)
    assert result.returncode == 0, result.stderr[-2000:]
    # stdout: JSON metric lines SageMaker's MetricDefinitions can match
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [m["step"] for m in lines if "loss" in m] == [1, 2, 3, 4]
    assert all({"loss", "tokens_per_s", "lr"} <= m.keys() for m in lines if "loss" in m)
    assert [m["step"] for m in lines if "eval_loss" in m] == [2, 4]
    # /opt/ml/model: a plain HF folder; /opt/ml/checkpoints: complete checkpoints; metrics history kept
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "trainforge.json"} <= {
        p.name for p in (root / "model").iterdir()
    }
    assert sorted(p.name for p in (root / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000004"]
    assert all((p / "COMPLETE").is_file() for p in (root / "checkpoints").glob("step-*"))
    assert len((root / "checkpoints/metrics.jsonl").read_text().splitlines()) == len(lines)
    assert not (root / "output/failure").exists()
    assert json.loads((root / "model/trainforge.json").read_text())["validation_examples"] == 1


def test_failure_writes_its_reason(tmp_path, tiny_model_dir):
    base = tmp_path / "broken-base"
    shutil.copytree(tiny_model_dir, base)
    (base / "config.json").unlink()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "t.jsonl").write_text(json.dumps(chat()) + "\n")
    root = prepare_training_tree(
        tmp_path / "ml", {"train": tmp_path / "train", "base_model": base}, TrainConfig().to_hyperparameters()
    )
    result = run_container(root)
    assert result.returncode == 1
    assert (root / "output/failure").read_text().startswith("TrainingFailed: no base model in channel base_model")
