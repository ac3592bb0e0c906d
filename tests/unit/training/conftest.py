from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import chat
from trainforge.local.opt_ml import prepare_training_tree
from trainforge.training.config import TrainConfig

QA = [
    ("what is the capital of france", "paris is the capital of france"),
    ("please reset my password", "the reset link is in your email"),
    ("where is my order", "your order has shipped and will arrive on monday"),
    ("hello how are you", "i am fine thank you"),
]


def qa_rows(count: int) -> list[dict]:
    return [chat(f"{QA[i % 4][0]} {i}", QA[i % 4][1]) for i in range(count)]


def build_opt_ml(folder: Path, base_model: Path, rows: list[dict] | None = None, **hyper) -> Path:
    """An /opt/ml tree under ``folder`` with ``base_model`` and a small chat dataset."""
    data = folder.parent / f"{folder.name}-data" / "train.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(json.dumps(r) for r in (rows or qa_rows(48))) + "\n")
    defaults = {
        "method": "lora",
        "max_steps": 6,
        "batch_size": 4,
        "max_seq_len": 64,
        "learning_rate": 0.01,
        "eval_every": 3,
        "checkpoint_every": 2,
        "lora_rank": 4,
        "validation_fraction": 0.1,
        # tests pin losses and compare runs: the same arithmetic on every machine, with or without native bf16
        "precision": "fp32",
    }
    config = TrainConfig.model_validate({**defaults, **hyper})
    return prepare_training_tree(folder, {"train": data.parent, "base_model": base_model}, config.to_hyperparameters())


@pytest.fixture
def opt_ml(tmp_path: Path, tiny_model_dir: Path):
    """Build an /opt/ml tree with the tiny base model and a small chat dataset."""

    def build(rows: list[dict] | None = None, name: str = "opt_ml", **hyper) -> Path:
        return build_opt_ml(tmp_path / name, tiny_model_dir, rows, **hyper)

    return build
