"""The lean gated MLP: the same loss and gradients as the model's own forward, keeping two of the four
intermediate tensors for the backward."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainforge.training.config import TrainConfig
from trainforge.training.lora import apply_lora
from trainforge.training.recompute import keep_fewer_activations


def _model(base_dir, method: str):
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if method == "lora":
        torch.manual_seed(0)
        model = apply_lora(model, TrainConfig(lora_rank=4, lora_dropout=0.2))
        generator = torch.Generator().manual_seed(1)
        for name, parameter in sorted(model.named_parameters()):
            if "lora_B" in name:  # not peft's zeros: the adapter's gradients must not vanish
                parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1
    return model.train()


def _loss_and_grads(model):
    model.zero_grad()
    input_ids = torch.arange(3 * 16).reshape(3, 16) % 50 + 3
    torch.manual_seed(7)  # the same dropout masks on both sides
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def _saved_bytes(model) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one forward (weights excluded)."""
    storages: dict[int, int] = {}
    weights = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in weights:  # nor views of them (a transposed weight)
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=torch.arange(3 * 16).reshape(3, 16) % 50 + 3).logits.sum()
    return sum(storages.values())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_lean_mlp_trains_like_the_models_own(tiny_model_dir, method):
    stock = _model(tiny_model_dir, method)
    lean = copy.deepcopy(stock)
    assert keep_fewer_activations(lean, checkpointing=False) == stock.config.num_hidden_layers
    expected, expected_grads = _loss_and_grads(stock)
    loss, grads = _loss_and_grads(lean)
    torch.testing.assert_close(loss, expected)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_lean_mlp_keeps_two_intermediate_tensors_instead_of_four(tiny_model_dir):
    stock = _model(tiny_model_dir, "full")
    lean = copy.deepcopy(stock)
    keep_fewer_activations(lean, checkpointing=False)
    config = stock.config
    intermediate = 3 * 16 * config.intermediate_size * 4  # one tokens x intermediate fp32 tensor
    assert _saved_bytes(stock) - _saved_bytes(lean) == 2 * intermediate * config.num_hidden_layers


def test_the_product_is_freed_after_the_forward(tiny_model_dir, monkeypatch):
    """Nothing keeps ``silu(gate) * up`` alive while the graph waits for its backward (a saved-tensor hook that
    closed over it would: autograd keeps the hooks with what they packed)."""
    from trainforge.training import recompute

    products = []
    silu_mul = recompute.silu_mul
    monkeypatch.setattr(
        recompute, "silu_mul", lambda gate, up: products.append(weakref.ref(out := silu_mul(gate, up))) or out
    )
    model = _model(tiny_model_dir, "lora")
    keep_fewer_activations(model, checkpointing=False)
    loss = model(input_ids=torch.arange(3 * 16).reshape(3, 16) % 50 + 3).logits.sum()
    gc.collect()
    assert len(products) == model.config.num_hidden_layers
    assert all(product() is None for product in products)
    loss.backward()  # rebuilt when the backward needs it
