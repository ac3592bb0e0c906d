"""Scores the Keras classifier on the held-out examples and writes the EvaluationReport the gate reads
(inputs under $TRAINFORGE_PROCESSING_ROOT, /opt/ml/processing in AWS: input/model, input/data,
input/config/evaluation.json; features.write_report says what "base" is)."""

import tensorflow as tf
from features import held_out, run, write_report


def main() -> None:
    model_dir, config, meta, x, y = held_out()
    model = tf.keras.models.load_model(model_dir / "model.keras")
    write_report(model_dir, config, meta, y, model.predict(x, verbose=0).argmax(axis=1))


if __name__ == "__main__":
    run(main)
