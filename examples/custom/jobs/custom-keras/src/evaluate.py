"""Scores the Keras classifier on the held-out examples and writes the EvaluationReport the gate reads.

Inputs under $TRAINFORGE_PROCESSING_ROOT (/opt/ml/processing in AWS): input/model (what train.py saved),
input/data (the held-out records), input/config/evaluation.json (run id). "base" is the classifier that
always answers the most frequent training label; the primary metric is accuracy, its delta the absolute
gain, with a bootstrap 95% interval.
"""

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from features import examples


def bootstrap(gains: np.ndarray, seed: int = 0, rounds: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [gains[rng.integers(0, len(gains), len(gains))].mean() for _ in range(rounds)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    root = Path(os.environ.get("TRAINFORGE_PROCESSING_ROOT", "/opt/ml/processing"))
    model_dir, config = (
        root / "input" / "model",
        json.loads((root / "input" / "config" / "evaluation.json").read_text()),
    )
    meta = json.loads((model_dir / "classifier.json").read_text())
    x, y, _ = examples(root / "input" / "data", meta["labels"])
    model = tf.keras.models.load_model(model_dir / "model.keras")
    tuned = (model.predict(x, verbose=0).argmax(axis=1) == y).astype(float)
    base = (y == int(np.argmax(meta["train_counts"]))).astype(float)
    low, high = bootstrap(tuned - base)
    report = {
        "run_id": config["run_id"],
        "base_model": "majority label",
        "tuned_model_uri": str(model_dir),
        "examples": len(y),
        "primary": "accuracy",
        "metrics": [
            {
                "name": "accuracy",
                "base": float(base.mean()),
                "tuned": float(tuned.mean()),
                "delta": float(tuned.mean() - base.mean()),
                "ci_low": low,
                "ci_high": high,
                "higher_is_better": True,
            }
        ],
        "forgetting": None,
    }
    (root / "output" / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"accuracy": report["metrics"][0]["tuned"], "base_accuracy": report["metrics"][0]["base"]}))


if __name__ == "__main__":
    main()
