"""The one-function RMSNorm: transformers' output to the bit, its gradients, and its own forward where the
dtypes are not fp32."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.unit.training.test_recompute import _saved_bytes
from trainforge.training.config import TrainConfig
from trainforge.training.lora import apply_lora
from trainforge.training.norm import fuse_rms_norms


def _model(base_dir, method: str, dtype=torch.float32):
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    generator = torch.Generator().manual_seed(1)
    for name, parameter in model.named_parameters():
        if "norm" in name:  # not the initial ones: a wrong weight gradient or scaling must show
            parameter.data = (torch.rand(parameter.shape, generator=generator) + 0.5).to(dtype)
    if method == "lora":
        torch.manual_seed(0)
        model = apply_lora(model, TrainConfig(lora_rank=4, lora_dropout=0.0))
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # not peft's zeros: the adapter's gradients must not vanish
                parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1
    return model.train()


def _loss_and_grads(model):
    model.zero_grad()
    input_ids = torch.arange(3 * 16).reshape(3, 16) % 50 + 3
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_fused_norm_trains_like_the_models_own(tiny_model_dir, method):
    stock = _model(tiny_model_dir, method)
    fused = copy.deepcopy(stock)
    assert fuse_rms_norms(fused) == 2 * stock.config.num_hidden_layers + 1
    expected, expected_grads = _loss_and_grads(stock)
    loss, grads = _loss_and_grads(fused)
    assert torch.equal(loss, expected)  # the forward is transformers' arithmetic, op for op
    assert grads.keys() == expected_grads.keys()
    if method == "full":
        assert any(".norm." in name or "layernorm" in name for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_norm_runs_as_one_autograd_function(tiny_model_dir):
    model = _model(tiny_model_dir, "full")
    fuse_rms_norms(model)
    norm = model.model.layers[0].input_layernorm
    out = norm(torch.randn(2, 5, model.config.hidden_size))
    assert type(out.grad_fn).__name__ == "_RMSNormBackward"


def test_other_dtypes_keep_the_models_own_forward(tiny_model_dir):
    stock = _model(tiny_model_dir, "full", dtype=torch.bfloat16)
    fused = copy.deepcopy(stock)
    fuse_rms_norms(fused)
    x = torch.randn(2, 5, stock.config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    out = fused.model.norm(x)
    assert type(out.grad_fn).__name__ != "_RMSNormBackward"
    assert torch.equal(out, stock.model.norm(x))


def test_a_trained_norm_keeps_its_input_alone(tiny_model_dir):
    """transformers' norm keeps its normalised input for the weight's gradient as well; this one rebuilds it
    from the input and the per-token statistic it keeps anyway (the memory estimate counts the input alone)."""
    stock = _model(tiny_model_dir, "full")
    fused = copy.deepcopy(stock)
    fuse_rms_norms(fused)
    norms = 2 * stock.config.num_hidden_layers + 1
    normalised = 3 * 16 * stock.config.hidden_size * 4  # the test batch's tokens x width, fp32
    assert _saved_bytes(stock) - _saved_bytes(fused) == norms * normalised


@pytest.mark.parametrize(
    ("module", "name"),
    [("qwen2_vl.modeling_qwen2_vl", "Qwen2VLRMSNorm"), ("qwen2_5_vl.modeling_qwen2_5_vl", "Qwen2_5_VLRMSNorm")],
)
def test_the_qwen_vl_norms_are_fused_and_match_their_own(module, name):
    """Qwen2-VL's and Qwen2.5-VL's norms are Llama's forward under another name: fused, to the bit."""
    stock = getattr(importlib.import_module(f"transformers.models.{module}"), name)(16, eps=1e-6)
    stock.weight.data = torch.rand(16, generator=torch.Generator().manual_seed(2)) + 0.5
    fused = copy.deepcopy(stock)
    assert fuse_rms_norms(fused) == 1
    x = torch.randn(3, 5, 16, requires_grad=True)
    x_fused = x.detach().clone().requires_grad_()
    expected, out = stock(x), fused(x_fused)
    assert torch.equal(out, expected)
    expected.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(x_fused.grad, x.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.weight.grad, stock.weight.grad, rtol=1e-5, atol=1e-6)
