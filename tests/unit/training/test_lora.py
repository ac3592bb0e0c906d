import pytest
import torch
from peft import get_peft_model
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM

from trainforge.planning.memory import bf16_linear_copies
from trainforge.training import lora
from trainforge.training.config import TrainConfig
from trainforge.training.memory import model_shape


def _adapted(base_dir, fused: bool, dropout: float):
    """The tiny model with an adapter whose B factors are random (peft starts them at zero, where the
    adapter's contribution and half its gradients vanish and would hide a wrong formula)."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(0)
    config = TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=dropout)
    # the reference: stock peft's layers from the same configuration
    model = lora.apply_lora(model, config) if fused else get_peft_model(model, lora.lora_config(config))
    generator = torch.Generator().manual_seed(1)
    for name, parameter in sorted(model.named_parameters()):
        if "lora_B" in name:
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1
    return model


def _logits_and_grads(model, autocast: bool):
    model.zero_grad()
    input_ids = torch.arange(2 * 12).reshape(2, 12) % 50 + 3
    torch.manual_seed(7)  # the same dropout masks on both sides
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=input_ids).logits.float()
    (logits.sin().sum()).backward()
    return logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("dropout", "autocast", "tolerance"), [(0.0, False, 1e-5), (0.2, False, 1e-5), (0.0, True, 3e-2)]
)
def test_fused_adapter_matches_peft(tiny_model_dir, monkeypatch, dropout, autocast, tolerance):
    calls = []
    apply = lora._LoraLinearFunction.apply
    monkeypatch.setattr(lora._LoraLinearFunction, "apply", lambda *a: calls.append(1) or apply(*a))
    reference = _adapted(tiny_model_dir, fused=False, dropout=dropout)
    fused = _adapted(tiny_model_dir, fused=True, dropout=dropout)
    assert not calls
    expected, expected_grads = _logits_and_grads(reference, autocast)
    logits, grads = _logits_and_grads(fused, autocast)
    assert len(calls) == sum(isinstance(m, lora.FusedLoraLinear) for m in fused.modules()) > 0
    torch.testing.assert_close(logits, expected, rtol=tolerance, atol=tolerance)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():  # sums are taken in another order: errors scale with the largest entry
        want = expected_grads[name]
        assert (grad - want).abs().max() <= tolerance * want.abs().max(), name


def test_disabled_adapter_is_the_base_model(tiny_model_dir):
    """DPO's reference pass runs the adapted model with its adapter disabled: peft's own path."""
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    fused = _adapted(tiny_model_dir, fused=True, dropout=0.0)
    input_ids = torch.arange(12)[None] + 3
    with torch.no_grad(), fused.disable_adapter():
        torch.testing.assert_close(fused(input_ids=input_ids).logits, base(input_ids=input_ids).logits)


class _BaseWeightCasts(TorchDispatchMode):
    """Counts the casts of the given tensors (by storage) that run while it is active."""

    def __init__(self, tensors):
        super().__init__()
        self.pointers = {t.data_ptr() for t in tensors}
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and args[0].data_ptr() in self.pointers:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_under_bf16_the_frozen_base_is_cast_once_not_per_step_and_trains_the_same(tiny_model_dir):
    casting, holding = (_adapted(tiny_model_dir, fused=True, dropout=0.0) for _ in range(2))
    bases = [m.get_base_layer().weight for m in holding.modules() if isinstance(m, lora.FusedLoraLinear)]
    held = lora.hold_frozen_base(holding, torch.bfloat16)
    # the bytes held are the ones the memory estimate counts for them
    assert held == bf16_linear_copies(model_shape(tiny_model_dir)) > 0
    with _BaseWeightCasts(bases) as casts:
        logits, grads = _logits_and_grads(holding, autocast=True)
    assert casts.count == 0
    expected, expected_grads = _logits_and_grads(casting, autocast=True)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=0, atol=0)
    # a base weight changed in place (a checkpoint loaded into it) is copied again, once
    with torch.no_grad():
        bases[0].mul_(2)
    with _BaseWeightCasts(bases) as casts:
        _logits_and_grads(holding, autocast=True)
        _logits_and_grads(holding, autocast=True)
    assert casts.count == 1


def test_under_autocast_sibling_projections_share_one_cast_of_their_input(tiny_model_dir, monkeypatch):
    """q, k and v read one bf16 copy of the normed input, gate and up another: per block 4 inputs, not 7."""
    inputs = []
    apply = lora._LoraLinearFunction.apply
    monkeypatch.setattr(lora._LoraLinearFunction, "apply", lambda x, *a: inputs.append(x.data_ptr()) or apply(x, *a))
    model = _adapted(tiny_model_dir, fused=True, dropout=0.1)
    _logits_and_grads(model, autocast=True)
    layers = model.config.num_hidden_layers
    assert len(inputs) == 7 * layers and len(set(inputs)) == 4 * layers
    inputs.clear()
    _logits_and_grads(model, autocast=False)  # nothing to cast: each layer its fp32 input as it is
    assert len(set(inputs)) == 4 * layers


def test_on_a_cpu_the_dropout_masks_are_drawn_without_dropouts_arithmetic(tiny_model_dir, monkeypatch):
    """The masks are dropout's own draws (the parity test above holds them equal to peft's), taken without
    multiplying a tensor of ones and dividing it: on a CPU the adapters' dropout modules are not run."""
    model = _adapted(tiny_model_dir, fused=True, dropout=0.2)
    calls = []
    forward = torch.nn.Dropout.forward
    monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: calls.append(1) or forward(self, x))
    _logits_and_grads(model, autocast=False)
    assert not calls
