"""A small Keras classifier (hashed word counts -> two dense layers -> label) on SageMaker's script-mode
contract: channels from SM_CHANNEL_*, hyperparameters as --name value, one JSON metric line per epoch
from a callback, the model (model.keras and the label names) into SM_MODEL_DIR."""

import argparse
import json
import os
import traceback
from pathlib import Path

import numpy as np
import tensorflow as tf
from features import BUCKETS, examples


class JsonLines(tf.keras.callbacks.Callback):
    """Prints each epoch's losses as the JSON lines TrainForge and SageMaker's metric definitions read."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = epoch + 1
        print(json.dumps({"step": step, "loss": round(float(logs["loss"]), 4), "total_steps": self.epochs}), flush=True)
        print(json.dumps({"step": step, "eval_loss": round(float(logs["val_loss"]), 4)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()

    tf.keras.utils.set_random_seed(args.seed)
    x, y, names = examples(Path(os.environ["SM_CHANNEL_TRAIN"]))
    vx, vy, _ = examples(Path(os.environ["SM_CHANNEL_VALIDATION"]), names)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((BUCKETS,)),
            tf.keras.layers.Dense(args.hidden, activation="relu"),
            tf.keras.layers.Dense(len(names)),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(args.learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x,
        y,
        validation_data=(vx, vy),
        epochs=args.epochs,
        batch_size=len(x),
        verbose=0,
        callbacks=[JsonLines(args.epochs)],
    )

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    model.save(model_dir / "model.keras")
    counts = np.bincount(y, minlength=len(names)).tolist()
    (model_dir / "classifier.json").write_text(json.dumps({"labels": names, "train_counts": counts}))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"), "failure").write_text(traceback.format_exc())
        raise
