"""A small Flax classifier (hashed word counts -> two layers -> label) trained with Optax, on SageMaker's
script-mode contract: channels from SM_CHANNEL_*, hyperparameters as --name value, metrics as JSON lines,
the model (parameters, label names, the training labels' counts) into SM_MODEL_DIR."""

import json
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from features import BUCKETS, examples, hyperparameters, run, save_labels
from flax import serialization


class Classifier(nn.Module):
    hidden: int
    labels: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.labels)(nn.relu(nn.Dense(self.hidden)(x)))


def main() -> None:
    args = hyperparameters()

    x, y, names = examples(Path(os.environ["SM_CHANNEL_TRAIN"]))
    vx, vy, _ = examples(Path(os.environ["SM_CHANNEL_VALIDATION"]), names)
    model = Classifier(args.hidden, len(names))
    params = model.init(jax.random.PRNGKey(args.seed), jnp.zeros((1, BUCKETS)))
    optimizer = optax.adam(args.learning_rate)
    state = optimizer.init(params)

    def loss_fn(p, features, labels):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, features), labels).mean()

    @jax.jit
    def step(p, s, features, labels):
        loss, grads = jax.value_and_grad(loss_fn)(p, features, labels)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    for epoch in range(1, args.epochs + 1):
        params, state, loss = step(params, state, x, y)
        print(json.dumps({"step": epoch, "loss": round(float(loss), 4), "total_steps": args.epochs}), flush=True)
        print(json.dumps({"step": epoch, "eval_loss": round(float(loss_fn(params, vx, vy)), 4)}), flush=True)

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    (model_dir / "params.msgpack").write_bytes(serialization.to_bytes(params))
    save_labels(model_dir, names, y, hidden=args.hidden)


if __name__ == "__main__":
    run(main)
