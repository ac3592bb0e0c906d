"""Scores the Flax classifier on the held-out examples and writes the EvaluationReport the gate reads
(inputs under $TRAINFORGE_PROCESSING_ROOT, /opt/ml/processing in AWS: input/model, input/data,
input/config/evaluation.json; features.write_report says what "base" is)."""

import jax
import jax.numpy as jnp
import numpy as np
from features import BUCKETS, held_out, run, write_report
from flax import serialization
from train_jax import Classifier


def main() -> None:
    model_dir, config, meta, x, y = held_out()
    model = Classifier(meta["hidden"], len(meta["labels"]))
    template = model.init(jax.random.PRNGKey(0), jnp.zeros((1, BUCKETS)))
    params = serialization.from_bytes(template, (model_dir / "params.msgpack").read_bytes())
    write_report(model_dir, config, meta, y, np.asarray(model.apply(params, x)).argmax(axis=1))


if __name__ == "__main__":
    run(main)
