"""What the JAX and Keras classifiers share: each review as hashed word counts, the contract's paths, and
the EvaluationReport their evaluation scripts write for the gate."""

import argparse
import json
import os
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

BUCKETS = 128


def features(text: str) -> np.ndarray:
    row = np.zeros(BUCKETS, dtype=np.float32)
    for word in text.lower().split():
        row[zlib.crc32(word.encode()) % BUCKETS] += 1.0
    return row


def examples(folder: Path, labels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features, label indices, label names) of every prompt/completion record under ``folder``."""
    rows = [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    names = labels or sorted({row["completion"].strip() for row in rows})
    x = np.stack([features(row["prompt"]) for row in rows])
    y = np.array([names.index(row["completion"].strip()) for row in rows], dtype=np.int32)
    return x, y, names


def hyperparameters() -> argparse.Namespace:
    """The job's hyperparameters, as the toolkit passes them (--name value); names of the platform's own
    (base_model_id) are let through."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_known_args()[0]


def save_labels(model_dir: Path, names: list[str], y: np.ndarray, **extra: object) -> None:
    counts = np.bincount(y, minlength=len(names)).tolist()
    (model_dir / "classifier.json").write_text(json.dumps({"labels": names, "train_counts": counts, **extra}))


def held_out() -> tuple[Path, dict, dict, np.ndarray, np.ndarray]:
    """The evaluation job's inputs: (model folder, evaluation config, the model's labels, features, labels)."""
    root = Path(os.environ.get("TRAINFORGE_PROCESSING_ROOT", "/opt/ml/processing"))
    model_dir = root / "input" / "model"
    meta = json.loads((model_dir / "classifier.json").read_text())
    config = json.loads((root / "input" / "config" / "evaluation.json").read_text())
    x, y, _ = examples(root / "input" / "data", meta["labels"])
    return model_dir, config, meta, x, y


def write_report(model_dir: Path, config: dict, meta: dict, y: np.ndarray, predicted: np.ndarray) -> None:
    """The EvaluationReport the gate reads: accuracy against always answering the commonest training label,
    its delta the absolute gain with a bootstrap 95% interval."""
    tuned = (predicted == y).astype(float)
    base = (y == int(np.argmax(meta["train_counts"]))).astype(float)
    rng = np.random.default_rng(0)
    means = [(tuned - base)[rng.integers(0, len(y), len(y))].mean() for _ in range(1000)]
    comparison = {
        "name": "accuracy",
        "base": float(base.mean()),
        "tuned": float(tuned.mean()),
        "delta": float(tuned.mean() - base.mean()),
        "ci_low": float(np.percentile(means, 2.5)),
        "ci_high": float(np.percentile(means, 97.5)),
        "higher_is_better": True,
    }
    report = {
        "run_id": config["run_id"],
        "base_model": "majority label",
        "tuned_model_uri": str(model_dir),
        "examples": len(y),
        "primary": "accuracy",
        "metrics": [comparison],
        "forgetting": None,
    }
    output = Path(os.environ.get("TRAINFORGE_PROCESSING_ROOT", "/opt/ml/processing")) / "output"
    (output / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"accuracy": comparison["tuned"], "base_accuracy": comparison["base"]}), flush=True)


def run(main: Callable[[], None]) -> None:
    """``main``, its traceback written to SM_OUTPUT_DIR/failure on an error: SageMaker reports that file's
    first 1 KB as the job's FailureReason."""
    try:
        main()
    except Exception:
        Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"), "failure").write_text(traceback.format_exc())
        raise
