"""A small Keras classifier (hashed word counts -> two dense layers -> label) on SageMaker's script-mode
contract: channels from SM_CHANNEL_*, hyperparameters as --name value, one JSON metric line per epoch
from a callback, the model (model.keras and the label names) into SM_MODEL_DIR."""

import json
import os
from pathlib import Path

import tensorflow as tf
from features import BUCKETS, examples, hyperparameters, run, save_labels


class JsonLines(tf.keras.callbacks.Callback):
    """Prints each epoch's losses as the JSON lines TrainForge and SageMaker's metric definitions read."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        step, logs = epoch + 1, logs or {}
        print(json.dumps({"step": step, "loss": round(float(logs["loss"]), 4), "total_steps": self.epochs}), flush=True)
        print(json.dumps({"step": step, "eval_loss": round(float(logs["val_loss"]), 4)}), flush=True)


def main() -> None:
    args = hyperparameters()

    tf.keras.utils.set_random_seed(args.seed)
    x, y, names = examples(Path(os.environ["SM_CHANNEL_TRAIN"]))
    vx, vy, _ = examples(Path(os.environ["SM_CHANNEL_VALIDATION"]), names)
    layers = [tf.keras.Input((BUCKETS,)), tf.keras.layers.Dense(args.hidden, activation="relu")]
    model = tf.keras.Sequential([*layers, tf.keras.layers.Dense(len(names))])
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate), loss=loss)
    callbacks = [JsonLines(args.epochs)]
    model.fit(x, y, validation_data=(vx, vy), epochs=args.epochs, batch_size=len(x), verbose=0, callbacks=callbacks)

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    model.save(model_dir / "model.keras")
    save_labels(model_dir, names, y)


if __name__ == "__main__":
    run(main)
