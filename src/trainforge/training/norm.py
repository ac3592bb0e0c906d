"""RMSNorm's forward and backward as one autograd function, for the Llama-family norms.

transformers' ``LlamaRMSNorm`` is ``weight * (x * rsqrt(mean(x ** 2) + eps))``, four ops that each write a
tokens x width tensor and keep it for the backward, which autograd then reverses op by op (a dozen passes,
most allocating). Here the forward keeps ``x`` and the per-token ``rsqrt`` alone and the backward is the
closed form, ``r * (g * w - x * r ** 2 * mean(g * w * x))``, in four passes written in place. Measured for
2,048 x 576 in fp32 on one thread, forward and backward: 5-8 against 12-15 ms (torch's own
``F.rms_norm`` took 20 ms on the same CPU, without a fused CPU kernel); SmolLM2-135M runs 61 norms per
forward. The forward's arithmetic is transformers', op for op, so its output is the same to the bit.
"""

from __future__ import annotations

import types
from typing import Any

import torch

# The norm classes whose forward is exactly Llama's (fp32 statistics, weight times the normed input, the
# epsilon in ``variance_epsilon``): Gemma's adds one to its weight, and other models' differ again. Qwen2-VL's
# and Qwen2.5-VL's are their text models' (and 2.5's vision tower's) norms, Llama's forward renamed
# (transformers' modeling_qwen2_vl.py and modeling_qwen2_5_vl.py).
LLAMA_RMS_NORMS = frozenset(
    {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Qwen2VLRMSNorm", "Qwen2_5_VLRMSNorm"}
)


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        rsqrt = x.pow(2).mean(-1, keepdim=True).add_(eps).rsqrt_()
        ctx.save_for_backward(x, weight, rsqrt)
        return (x * rsqrt).mul_(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, rsqrt = ctx.saved_tensors
        wants_x, wants_weight, _ = ctx.needs_input_grad
        grad_weight = (grad * x).mul_(rsqrt).sum(tuple(range(grad.dim() - 1))) if wants_weight else None
        grad_x = None
        if wants_x:
            grad_normed = grad * weight
            dot = (grad_normed * x).mean(-1, keepdim=True).mul_(rsqrt.square())
            grad_x = grad_normed.sub_(x * dot).mul_(rsqrt)
        return grad_x, grad_weight, None


def _fused_forward(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if hidden_states.dtype != torch.float32 or weight.dtype != torch.float32:
        # transformers' mixed-dtype rule (statistics in fp32, cast back before the weight) is its own forward's
        return type(self).forward(self, hidden_states)  # type: ignore[no-any-return]
    return _RMSNorm.apply(hidden_states, weight, self.variance_epsilon)  # type: ignore[no-any-return]


def fuse_rms_norms(model: torch.nn.Module) -> int:
    """Switch every norm of :data:`LLAMA_RMS_NORMS` in ``model`` to the one-function forward; returns how many.
    Inputs or weights other than fp32 keep the model's own forward."""
    switched = 0
    for module in model.modules():
        if type(module).__name__ in LLAMA_RMS_NORMS:
            module.forward = types.MethodType(_fused_forward, module)  # type: ignore[method-assign]
            switched += 1
    return switched
