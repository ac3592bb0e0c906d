import pytest
import torch
import torch.nn.functional as F

from trainforge.training import linear_cross_entropy as module
from trainforge.training.linear_cross_entropy import linear_cross_entropy


def _inputs(bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(70, 16, generator=generator, requires_grad=True)
    weight = torch.randn(300, 16, generator=generator, requires_grad=True)
    offsets = torch.randn(300, generator=generator, requires_grad=True) if bias else None
    return hidden, weight, offsets, torch.randint(0, 300, (70,), generator=generator)


def _loss_and_grads(loss_fn, hidden, weight, bias, targets):
    for tensor in (hidden, weight, bias):
        if tensor is not None:
            tensor.grad = None
    loss = loss_fn(hidden, weight, bias, targets)
    (loss * 0.25).backward()  # a scale, as the loop applies 1/count: the backward must carry it
    return loss.detach(), [t.grad for t in (hidden, weight, bias) if t is not None]


@pytest.mark.parametrize("bias", [False, True])
def test_matches_the_unfused_loss_and_its_gradients_across_chunks(monkeypatch, bias):
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 300 * 32)  # 32 rows a chunk: 3 chunks, the last partial
    inputs = _inputs(bias)

    def reference(hidden, weight, offsets, targets):
        return F.cross_entropy(F.linear(hidden, weight, offsets).float(), targets, reduction="sum")

    expected, expected_grads = _loss_and_grads(reference, *inputs)
    loss, grads = _loss_and_grads(linear_cross_entropy, *inputs)
    torch.testing.assert_close(loss, expected)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_frozen_head_gets_no_gradient_and_validation_computes_none(monkeypatch):
    hidden, weight, _, targets = _inputs(False)
    weight.requires_grad_(False)  # LoRA: the head is frozen, only the hidden states need a gradient
    linear_cross_entropy(hidden, weight, None, targets).backward()
    assert weight.grad is None and hidden.grad is not None
    computed: list[torch.Tensor] = []
    original = torch.Tensor.exp_
    monkeypatch.setattr(torch.Tensor, "exp_", lambda self: computed.append(self) or original(self))
    with torch.no_grad():  # a validation pass: the loss only, no softmax gradient built
        loss = linear_cross_entropy(hidden, weight, None, targets)
    assert computed == [] and not loss.requires_grad


def test_under_bf16_autocast_matches_the_unfused_loss(monkeypatch):
    """The dtypes the GPU path runs in: bf16 matmuls, fp32 softmax, gradients in the inputs' dtypes."""
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 300 * 32)
    inputs = _inputs(False)

    def reference(hidden, weight, offsets, targets):
        return F.cross_entropy(F.linear(hidden, weight, offsets).float(), targets, reduction="sum")

    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, expected_grads = _loss_and_grads(reference, *inputs)
        loss, grads = _loss_and_grads(linear_cross_entropy, *inputs)
    torch.testing.assert_close(loss, expected, rtol=1e-3, atol=1e-2)
    for got, want in zip(grads, expected_grads, strict=True):
        assert got.dtype == want.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
