"""FLOPs per token, the throughput table, the time range, prices and the cost of a run."""

from __future__ import annotations

import pytest

from tests.unit.planning.shapes import SMOLLM2, report, spec
from trainforge.errors import SpecInvalid
from trainforge.instances import instance_type
from trainforge.planning import ModelShape
from trainforge.planning.cost import dollars, planned_cost
from trainforge.planning.duration import forward_flops, job_rate, planned_time, span, training_flops_per_token
from trainforge.planning.machines import Machine
from trainforge.planning.prices import SPOT_SHARE, load_prices
from trainforge.planning.throughput import TRAINING_RATES, training_rate
from trainforge.planning.trials import trials
from trainforge.planning.work import data_shape, planned_work
from trainforge.spec import Hyperparameters

SHAPE = ModelShape.from_config(SMOLLM2)


def test_a_forward_is_twice_the_weights_the_token_passes_through():
    flops = forward_flops(SHAPE, context=0, lora_rank=None)
    # every linear layer and the (tied) head, but not the embedding lookup or the norms
    linear_weights = SHAPE.parameters - SHAPE.layers * 2 * SHAPE.hidden_size - SHAPE.hidden_size
    assert flops.linear == 2 * linear_weights and flops.attention == 0 and flops.adapters == 0
    assert forward_flops(SHAPE, context=100, lora_rank=None).attention == 2 * 2 * 30 * 576 * 100


def test_training_flops_by_method_and_checkpointing():
    hyper = Hyperparameters(lora_rank=16)
    f = forward_flops(SHAPE, 50, 16)
    full = training_flops_per_token(SHAPE, hyper, "full", 50)
    lora = training_flops_per_token(SHAPE, hyper, "lora", 50)
    assert full == 3 * (f.linear + f.attention)
    assert lora == 2 * f.linear + 3 * f.attention + 3 * f.adapters
    # LoRA's frozen base skips the weights' gradients: about two thirds of a full fine-tune
    assert 0.65 < lora / full < 0.72
    checkpointed = training_flops_per_token(SHAPE, Hyperparameters(gradient_checkpointing=True), "lora", 50)
    assert checkpointed == lora + f.forward
    assert training_flops_per_token(SHAPE, hyper, "dpo", 50) == lora + f.linear + f.attention


def test_every_instance_device_has_a_rate_in_the_precision_it_trains_in():
    for name in (
        "ml.g4dn.xlarge",
        "ml.g5.xlarge",
        "ml.g6e.xlarge",
        "ml.p3.2xlarge",
        "ml.p5.48xlarge",
        "ml.trn2.48xlarge",
    ):
        instance = instance_type(name)
        assert training_rate(instance.device_name, instance.native_bf16) is not None, name
    # only the CPU rows are measured; the rest say they are assumed
    assert {key for key, rate in TRAINING_RATES.items() if rate.measured} == {("cpu", False), ("cpu", True)}
    assert all(rate.source.startswith("assumed") for key, rate in TRAINING_RATES.items() if key[0] != "cpu")


def test_a_job_adds_its_devices_less_the_scaling_loss():
    one = job_rate(Machine.from_instance(instance_type("ml.g5.2xlarge")), True)
    four = job_rate(Machine.from_instance(instance_type("ml.g5.12xlarge")), True)
    assert one is not None and four is not None
    assert four.low == pytest.approx(one.low * 4 * 0.85)
    cpu = job_rate(Machine.from_instance(instance_type("ml.m5.xlarge")), False)  # 4 vCPUs: 2 cores
    assert cpu is not None and cpu.low == TRAINING_RATES[("cpu", False)].low * 2


def _plan_time(job, machine):
    work = planned_work(job, data_shape(job, report()), machine.world_size)
    time = planned_time(
        job, work, SHAPE, job.hyperparameters, machine, machine, context=35, base_bytes=270_000_000, local=False
    )
    assert time is not None
    return work, time


def test_the_time_is_the_flops_over_the_range_of_the_rate():
    job = spec(hyperparameters="{max_steps: 20, batch_size: 8, max_seq_len: 128, eval_every: 1000}")
    machine = Machine.from_instance(instance_type("ml.g5.2xlarge"))
    work, time = _plan_time(job, machine)
    flops = work.steps * work.tokens_per_step * time.flops_per_token
    validation = work.validation_tokens * forward_flops(SHAPE, 35, 16).forward
    assert time.training_seconds_low == pytest.approx((flops + validation) / time.throughput_high, abs=0.1)
    assert time.training_seconds_high == pytest.approx((flops + validation) / time.throughput_low, abs=0.1)
    assert time.startup_seconds > 600 and not time.throughput_measured  # two jobs start; an assumed rate
    assert time.total_seconds_low < time.total_seconds_high


def test_durations_read_as_people_read_them():
    assert span(26.2, 26.4) == "26 s" and span(41, 93) == "41-93 s"
    assert span(100, 700) == "1.7-11.7 min" and span(3 * 3600, 5 * 3600) == "3.0-5.0 h"


def test_prices_come_from_the_dated_table_and_a_file_overrides_them():
    prices = load_prices()
    assert prices.as_of and prices.hourly("us-east-1", "ml.g5.xlarge") == 1.408
    assert prices.spot_hourly("us-east-1", "ml.g5.xlarge") == pytest.approx(1.408 * SPOT_SHARE)
    assert prices.hourly("eu-west-1", "ml.g5.xlarge") is None  # never guessed
    merged = load_prices(
        "as_of: 2026-11-30\nregions:\n  eu-west-1:\n    ml.g5.xlarge: {on_demand: 1.6, spot: 0.5}\nspot_share: 0.4\n"
    )
    assert merged.as_of == "2026-11-30" and merged.hourly("eu-west-1", "ml.g5.xlarge") == 1.6
    assert merged.spot_hourly("eu-west-1", "ml.g5.xlarge") == 0.5
    assert merged.spot_hourly("us-east-1", "ml.g5.xlarge") == pytest.approx(1.408 * 0.4)


def test_a_bad_price_file_names_the_field():
    with pytest.raises(SpecInvalid, match=r"prices.yaml: not a price file \(regions.us-east-1.ml.g5.xlarge.on_demand"):
        load_prices("regions: {us-east-1: {ml.g5.xlarge: {on_demand: -1}}}", "prices.yaml")
    with pytest.raises(SpecInvalid, match="unknown_field"):
        load_prices("unknown_field: 1")


def test_the_cost_bills_each_job_its_hours_at_the_spot_or_on_demand_rate():
    machine = Machine.from_instance(instance_type("ml.g5.2xlarge"))
    evaluation = Machine.from_instance(instance_type("ml.g5.xlarge"))
    prices = load_prices()
    for spot in (True, False):
        job = spec(
            hyperparameters="{max_steps: 2000, batch_size: 8, max_seq_len: 1024}",
            compute=f"{{spot: {str(spot).lower()}}}",
        )
        _, time = _plan_time(job, machine)
        cost = planned_cost(job, time, machine, evaluation, prices, "us-east-1", volume_gb=31, model_bytes=538_000_000)
        hourly = 1.515 * (SPOT_SHARE if spot else 1)
        billed = time.process_start_seconds + time.training_seconds_high + time.startup_seconds / 2
        assert cost.training_usd_per_hour == pytest.approx(hourly)
        assert cost.training_usd_high == pytest.approx(billed / 3600 * hourly, abs=1e-4)
        assert cost.on_demand_usd_high == pytest.approx(billed / 3600 * 1.515, abs=1e-4)
        assert cost.evaluation_usd is not None and cost.storage_usd > 0
        assert cost.total_usd_high == pytest.approx(
            cost.training_usd_high + cost.evaluation_usd + cost.storage_usd, abs=1e-3
        )


def test_a_type_without_a_price_has_no_cost_rather_than_a_guess():
    machine = Machine.from_instance(instance_type("ml.p5.48xlarge"))
    job = spec()
    _, time = _plan_time(job, machine)
    cost = planned_cost(job, time, machine, machine, load_prices(), "us-east-1", volume_gb=100, model_bytes=1)
    assert cost.training_usd_high is None and cost.total_usd_high is None
    assert "no price for ml.p5.48xlarge" in cost.price_source


def test_a_cost_range_reads_as_one_figure_when_its_ends_round_alike():
    assert dollars(0.041, 0.044) == "$0.04"
    assert dollars(0.04, 0.19) == "$0.04-0.19"
    assert dollars(None, 1.0) == "no price"


def test_a_tuning_run_plans_every_trial_in_waves_and_bills_the_trials_that_run_together():
    machine = Machine.from_instance(instance_type("ml.g5.2xlarge"))
    evaluation = Machine.from_instance(instance_type("ml.g5.xlarge"))
    single = spec(hyperparameters="{max_steps: 200, batch_size: 8, max_seq_len: 1024}")
    tuned = spec(
        hyperparameters="{max_steps: 200, batch_size: 8, max_seq_len: 1024}", tuning="{max_jobs: 5, parallel: 2}"
    )
    search = trials(tuned, local=False)
    assert (search.jobs, search.at_once, search.waves) == (5, 2, 3)
    assert trials(tuned, local=True).waves == 5  # locally the trials run one after another
    refit = spec(
        hyperparameters="{max_steps: 200, batch_size: 8, max_seq_len: 1024}",
        tuning="{max_jobs: 5, parallel: 2, refit: true}",
    )
    assert trials(refit, local=False).waves == 4 and trials(refit, local=True).waves == 6  # one more job, last
    work, one = _plan_time(single, machine)
    many = planned_time(
        tuned,
        work,
        SHAPE,
        tuned.hyperparameters,
        machine,
        machine,
        context=35,
        base_bytes=270_000_000,
        local=False,
        waves=search.waves,
    )
    assert many is not None
    assert many.training_seconds_high == pytest.approx(3 * one.training_seconds_high, abs=0.5)
    assert many.evaluation_seconds == one.evaluation_seconds  # the best trial alone is evaluated
    prices = load_prices()
    cost = planned_cost(tuned, many, machine, evaluation, prices, "us-east-1", volume_gb=31, model_bytes=1, at_once=2)
    billed = many.process_start_seconds + many.training_seconds_high + many.startup_seconds / 2
    assert cost.training_usd_high == pytest.approx(2 * billed / 3600 * 1.515 * SPOT_SHARE, abs=1e-4)
