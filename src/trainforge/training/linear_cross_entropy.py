"""The output projection and the cross-entropy in one pass over chunks of positions, never holding the
logits of the whole batch.

``cross_entropy(head(hidden))`` keeps a positions x vocabulary log-softmax from the forward to the backward,
which then builds two more tensors of that size: ~100 MB each in fp32 for SmolLM2's 49k vocabulary and ~500
labelled positions, ~10 GB each for Qwen's 152k vocabulary and 16k labelled positions of a GPU batch. Here each
chunk's logits are turned into the loss and, while they are at hand, into the gradients of the hidden
states and of the head (softmax minus one-hot), so the backward only scales what the forward computed and
the largest tensor is one chunk. The idea is Liger Kernel's fused linear cross-entropy (Hsu et al., 2024),
without its Triton kernels: the same torch ops run on every device. The matmuls are the same as unfused,
so on a CPU it takes the same time (616 vs 610 ms for 500 positions x 49k, forward and backward, at this
chunk size; smaller chunks were slower: 750 ms at half, 1,080 ms at a quarter).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trainforge.planning.memory import LOSS_CHUNK_ELEMENTS

# Logit elements per chunk (the memory estimate counts them: planning/memory.py). CPU: 32 MB in fp32; its
# matmuls lose efficiency on fewer rows (measured above). GPU/Neuron: 512 MB, so that a batch of 16k
# positions is a few chunks rather than ~100 launches of each op and ~100 passes over the head's gradient.
CHUNK_ELEMENTS = LOSS_CHUNK_ELEMENTS["cpu"]
ACCELERATOR_CHUNK_ELEMENTS = LOSS_CHUNK_ELEMENTS["cuda"]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        recording: bool,
    ) -> torch.Tensor:
        # needs_input_grad says which inputs require grad, even under no_grad: ``recording`` says whether
        # autograd is recording, i.e. whether anything will ever call backward (not in a validation pass).
        wants_hidden, wants_weight, wants_bias = (wanted and recording for wanted in ctx.needs_input_grad[:3])
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if wants_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if wants_bias and bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        device = hidden.device.type
        # The matmuls run in autocast's dtype when it is on (bf16 on GPUs), as F.linear would: the head is
        # cast once here, not once per chunk.
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        head, offsets = weight.to(dtype), None if bias is None else bias.to(dtype)
        rows = chunk_rows(device, weight.size(0))
        for start in range(0, hidden.size(0), rows):
            chunk, chunk_targets = hidden[start : start + rows].to(dtype), targets[start : start + rows]
            logits = F.linear(chunk, head, offsets).float()
            normaliser = logits.logsumexp(-1)
            total += (normaliser - logits.gather(1, chunk_targets[:, None]).squeeze(1)).sum()
            if grad_hidden is None and grad_weight is None and grad_bias is None:
                continue
            # d(loss)/d(logits) = softmax - one_hot(target), built in place in the fp32 logits
            probabilities = logits.sub_(normaliser[:, None]).exp_()
            probabilities[torch.arange(len(chunk_targets), device=logits.device), chunk_targets] -= 1
            grad_logits = probabilities.to(dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + rows] = grad_logits @ head
            if grad_weight is not None:
                grad_weight += grad_logits.t() @ chunk
            if grad_bias is not None:
                grad_bias += probabilities.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.parameter_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return (
            None if grad_hidden is None else grad_hidden * grad_total.to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * grad_total).to(ctx.parameter_dtype),
            None if grad_bias is None else (grad_bias * grad_total).to(ctx.parameter_dtype),
            None,
            None,
        )


def chunk_rows(device: str, vocab_size: int) -> int:
    """Positions projected onto the vocabulary at a time, within the device's chunk budget (above)."""
    budget = CHUNK_ELEMENTS if device == "cpu" else ACCELERATOR_CHUNK_ELEMENTS
    return max(1, budget // vocab_size)


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> torch.Tensor:
    """``F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="sum")`` for 2-D
    ``hidden`` (positions x width), in chunks."""
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, torch.is_grad_enabled())  # type: ignore[no-any-return]
