"""Automatic hyperparameters: chosen from the data and the model when the spec names none, each with its
reason, and planned exactly as they are trained (one owner: ``tuning.auto``)."""

from __future__ import annotations

from tests.unit.planning.shapes import LLAMA_8B, SMOLLM2, report, spec
from trainforge.planning.work import data_shape, optimizer_steps, pack, planned_work
from trainforge.tuning.auto import MAX_STEPS, MIN_STEPS, resolve_spec


def test_small_data_without_hyperparameters_gets_enough_steps_and_says_why():
    """300 short chat examples: a default run would take a handful of steps; auto trains at least MIN_STEPS."""
    small = report(examples=300, histogram={"<=64": 300}, total=300 * 40)
    small = small.model_copy(update={"token_stats": small.token_stats.model_copy(update={"max_tokens": 60})})
    resolved = resolve_spec(spec(), small, SMOLLM2)
    hyper = resolved.spec.hyperparameters
    assert hyper.max_seq_len == 64 and hyper.learning_rate == 5e-4 and hyper.lora_targets == "all-linear"
    shape = data_shape(resolved.spec, small)
    steps = optimizer_steps(None, hyper.epochs, pack(shape.train, hyper.max_seq_len), hyper.batch_size)
    assert steps >= MIN_STEPS
    # the plan counts what the run trains: the planner reads the resolved spec
    assert planned_work(resolved.spec, shape, 1).steps == steps
    record = resolved.record()
    assert record["spec"]["hyperparameters"]["epochs"] == hyper.epochs
    assert {"epochs", "learning_rate", "lora_rank", "warmup_ratio", "max_seq_len"} <= set(record["auto"])
    assert all(choice["reason"] for choice in record["auto"].values())
    # resolving the resolved spec changes nothing
    assert resolve_spec(resolved.spec, small, SMOLLM2).spec == resolved.spec


def test_large_data_trains_a_fraction_of_an_epoch_and_large_full_models_smaller_steps():
    big = report(examples=4_000_000, histogram={"<=128": 4_000_000}, total=4_000_000 * 100)
    resolved = resolve_spec(spec(method="full"), big, LLAMA_8B)
    hyper = resolved.spec.hyperparameters
    assert hyper.max_steps == MAX_STEPS and hyper.learning_rate == 1e-5
    work = planned_work(resolved.spec, data_shape(resolved.spec, big), 1)
    assert work.steps == MAX_STEPS and work.epochs < 1


def test_a_spec_that_sets_hyperparameters_keeps_them():
    written = spec(hyperparameters="{learning_rate: 0.001}")
    resolved = resolve_spec(written, report(), SMOLLM2)
    assert resolved.spec == written and not resolved.auto
