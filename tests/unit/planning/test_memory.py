"""The memory estimate and the settings fitted to a device's memory, from a model's config alone (no torch)."""

from __future__ import annotations

import json

import pytest

from tests.unit.planning.shapes import SMOLLM2
from trainforge.planning import ModelShape, UnknownArchitecture, estimate_peak, fit_to_memory, memory_facts
from trainforge.planning.memory import EFFICIENT_MICRO_BATCH_TOKENS, HEADROOM, GiB
from trainforge.spec import Hyperparameters


def smollm2() -> ModelShape:
    return ModelShape.from_config(SMOLLM2)


def estimate(shape: ModelShape, method: str = "lora", bf16: bool = False, world_size: int = 1, **hyper):
    return estimate_peak(shape, Hyperparameters(**hyper), method, device="cpu", bf16=bf16, world_size=world_size)


def test_the_shape_counts_the_parameters_torch_counts():
    """134,515,008: what ``sum(p.numel())`` gives for the loaded SmolLM2-135M (tied head counted once)."""
    shape = smollm2()
    assert shape.parameters == 134_515_008
    # an adapter of rank 16 on every linear layer of every block, as peft's all-linear attaches it
    assert shape.lora_parameters(16) == 4_884_480


def test_the_tiny_model_config_matches_the_model_torch_builds(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from trainforge.training.config import TrainConfig
    from trainforge.training.lora import apply_lora

    shape = ModelShape.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    adapted = apply_lora(model, TrainConfig(lora_rank=4))
    assert shape.lora_parameters(4) == sum(p.numel() for p in adapted.parameters() if p.requires_grad)


def test_a_config_without_the_size_fields_is_named():
    with pytest.raises(UnknownArchitecture, match=r"whisper.*has no hidden_size"):
        ModelShape.from_config({"model_type": "whisper", "d_model": 384})


def test_activations_grow_with_the_tokens_and_checkpointing_keeps_a_fraction():
    shape = smollm2()
    small, large = estimate(shape, batch_size=8, max_seq_len=256), estimate(shape, batch_size=8, max_seq_len=1024)
    assert large.parts["activations"] == pytest.approx(4 * small.parts["activations"], rel=0.01)
    checkpointed = estimate(shape, batch_size=8, max_seq_len=1024, gradient_checkpointing=True)
    assert checkpointed.parts["activations"] < large.parts["activations"] / 5
    # per token and block without checkpointing: 2 fp32 norm inputs, 2 normed, attention's 3 x 576 + 2 x 192,
    # the MLP's two projections of 1,536 and 7 adapters of rank 16, all fp32 (30,400 bytes), and the adapters'
    # dropout masks, a byte for each element of their inputs (4,992 bytes); then the final norm's two
    per_token = large.parts["activations"] / (8 * 1024)
    assert per_token == pytest.approx(30 * (30_400 + 4_992) + 4 * 576 * 2, rel=1e-6)


def test_a_full_fine_tune_holds_gradients_and_optimizer_state_for_every_weight():
    shape = smollm2()
    lora, full = estimate(shape), estimate(shape, method="full")
    assert full.parts["gradients"] == 4 * shape.parameters
    assert full.parts["optimizer"] == 8 * shape.parameters
    assert lora.parts["optimizer"] == 8 * shape.lora_parameters(16)


def test_fsdp_shards_the_training_state_over_the_processes():
    shape = smollm2()
    one = estimate(shape, method="full")
    four = estimate(shape, method="full", world_size=4, distributed="fsdp")
    assert four.parts["optimizer"] == one.parts["optimizer"] // 4
    assert four.parts["weights"] < one.parts["weights"] / 2
    ddp = estimate(shape, method="full", world_size=4)  # a full copy per process, plus gradient buckets
    assert ddp.parts["gradients"] == 2 * one.parts["gradients"]


def test_bf16_halves_what_the_matrix_multiplies_write():
    shape, hyper = smollm2(), Hyperparameters(max_seq_len=1024)
    fp32, bf16 = (estimate_peak(shape, hyper, "lora", device="cuda", bf16=half) for half in (False, True))
    assert 0.5 < bf16.parts["activations"] / fp32.parts["activations"] < 0.75  # the residual stream stays fp32
    # on a CPU attention's kernel runs in fp32 (training/attention.py): its q, k, v and output stay 4 bytes
    cpu = estimate(shape, max_seq_len=1024, bf16=True)
    kernel = 2 * shape.attention_width + 2 * shape.kv_width
    assert cpu.parts["activations"] - bf16.parts["activations"] == hyper.batch_size * 1024 * shape.layers * kernel * 2


def test_under_bf16_adapters_keep_one_copy_of_each_normed_input_and_plain_projections_one_each():
    """LoRA's q, k, v share one bf16 copy of their input, gate and up another (training/lora.py); a full
    fine-tune's five projections cast it five times."""
    shape, hyper = smollm2(), Hyperparameters(max_seq_len=512, lora_dropout=0.0)

    def full_minus_lora(bf16):
        lora, full = (
            estimate_peak(shape, hyper, m, device="cpu", bf16=bf16).parts["activations"] for m in ("lora", "full")
        )
        return full - lora

    # beyond what a full fine-tune keeps in either precision: 3 more bf16 copies of the width, and the
    # adapters' rank-r products in bf16 rather than fp32
    per_block = 3 * shape.hidden_size * 2 + 7 * hyper.lora_rank * 2
    assert full_minus_lora(True) - full_minus_lora(False) == hyper.batch_size * 512 * shape.layers * per_block


def test_settings_that_fit_are_left_alone():
    fit = fit_to_memory(smollm2(), Hyperparameters(), "lora", device="cpu", bf16=False, capacity=64 * GiB)
    assert fit.fits and fit.adjustments == [] and fit.hyperparameters == Hyperparameters()


def capacity_for(total: int, device: str = "cpu") -> int:
    """A device whose budget is exactly ``total`` bytes."""
    return int(total / HEADROOM[device]) + 1


def test_a_micro_batch_that_does_not_fit_is_split_keeping_the_effective_batch():
    shape = smollm2()
    wanted = Hyperparameters(batch_size=8, grad_accum=2, max_seq_len=1024)
    two = estimate(shape, batch_size=2, grad_accum=8, max_seq_len=1024)
    fit = fit_to_memory(shape, wanted, "lora", device="cpu", bf16=False, capacity=capacity_for(two.total))
    assert fit.fits
    assert (fit.hyperparameters.batch_size, fit.hyperparameters.grad_accum) == (2, 8)  # 16 sequences a step
    assert not fit.hyperparameters.gradient_checkpointing
    assert [(a.setting, a.before, a.after) for a in fit.adjustments] == [("batch_size", 8, 2), ("grad_accum", 2, 8)]
    assert "micro-batch 8 x 1024 tokens needs an estimated" in fit.adjustments[0].reason
    assert "effective batch of 16 sequences" in fit.adjustments[1].reason


def test_checkpointing_is_the_fix_when_a_fitting_micro_batch_would_be_too_small():
    """On a GPU, micro-batches of a 1,024-token row are below the efficient size: where the micro-batch of 8
    fits only with checkpointing, checkpointing is chosen over splitting it."""
    shape = smollm2()
    checkpointed = estimate_peak(shape, Hyperparameters(gradient_checkpointing=True), "lora", device="cuda", bf16=True)
    assert EFFICIENT_MICRO_BATCH_TOKENS["cuda"] > 1024
    capacity = capacity_for(checkpointed.total, "cuda")
    fit = fit_to_memory(shape, Hyperparameters(), "lora", device="cuda", bf16=True, capacity=capacity)
    assert fit.fits and fit.hyperparameters.gradient_checkpointing
    assert (fit.hyperparameters.batch_size, fit.hyperparameters.grad_accum) == (8, 1)
    assert [adjustment.setting for adjustment in fit.adjustments] == ["gradient_checkpointing"]
    assert "one more forward per step" in fit.adjustments[0].reason


def test_a_run_that_fits_nowhere_says_so_with_the_numbers_and_the_levers():
    shape = smollm2()
    fit = fit_to_memory(shape, Hyperparameters(), "full", device="cpu", bf16=False, capacity=2 * GiB)
    assert not fit.fits
    assert fit.hyperparameters.batch_size == 1 and fit.hyperparameters.gradient_checkpointing
    message = fit.explain()
    assert "at micro-batch 8 x 1024 tokens, over the budget of 1.50 GiB (75% of 2.00 GiB of host memory)" in message
    assert "even micro-batch 1 with gradient checkpointing needs" in message
    assert "method: lora" in message and "max_seq_len" in message


def test_memory_facts_name_the_estimate_the_settings_and_the_peak():
    records = [
        {"event": "memory", "device": "cpu", "capacity_mb": 20000, "budget_mb": 15000, "estimate_mb": 8300,
         "requested": {"batch_size": 8, "grad_accum": 1, "gradient_checkpointing": False}},
        {"event": "adjusted", "setting": "batch_size", "from": 8, "to": 4, "reason": "..."},
        {"step": 1, "loss": 2.0, "peak_memory_mb": 7000},
        {"step": 2, "loss": 1.9, "peak_memory_mb": 7400},
        {"step": 2, "eval_loss": 1.8, "peak_memory_mb": 7300},
    ]  # fmt: skip
    assert memory_facts(records) == (
        "Memory: estimated peak 8,300 MB (micro-batch 4) of 20,000 MB of cpu memory, budget 15,000 MB; "
        "peak seen 7,400 MB by step 2."
    )
    # a higher peak seen from outside the process (the launcher's reading of a process that was killed)
    assert memory_facts(records, peak_seen=9000 * 2**20).endswith("peak seen 9,000 MB.")
    assert memory_facts([{"step": 1, "loss": 2.0}]) is None
