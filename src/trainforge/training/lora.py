"""LoRA through peft: adapters on every linear layer of the decoder, merged into the weights on export
so the output is a plain HF model any server can load (the adapter is saved beside it as well).

The adapters are peft's own (same parameters, same saved adapter, same merge), with one change: a plain
adapter's forward and backward run as one autograd function. peft computes ``base(x) + B(A(x)) * scale``
as separate ops, each writing a tokens x width tensor (the product, the scaled product, the sum) and each
reversed in the backward, then autograd adds the two gradients of ``x``. Here the scale is applied to the
rank-r factor (``addmm``'s ``alpha``), the adapter's product accumulates into the base output and its input
gradient into the base's, so the only full-size work left is the matmuls. Measured on SmolLM2-135M with an
adapter on its 210 linear layers: the step is ~6% shorter on a CPU (docs/benchmarks.md).

The adapter's dropout is drawn exactly as peft's (its own ``nn.Dropout``, on a tensor of ones), but what the
backward keeps is the mask, a byte an element, not the dropped copy of the input and dropout's float noise
(eight bytes an element, for each of a block's seven adapters): on SmolLM2-135M with the job spec's default
dropout of 0.05, they were 39 of the 81 KiB a token and block kept for the backward; the masks are 5 KiB.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from torch.distributed.tensor import DTensor

from trainforge.training.config import TrainConfig


def _dropout_factor(keep: torch.Tensor, p: float, dtype: torch.dtype) -> torch.Tensor:
    """What dropout multiplies by: 0 where dropped, ``1 / (1 - p)`` where kept (built as ``F.dropout`` builds it
    on a CPU, so the product is the same to the bit)."""
    return keep.to(dtype).div_(1 - p)


def _dropout_mask(dropout: torch.nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """Where ``dropout(x)`` keeps ``x``: the very draws it would make, so the masks are peft's. On a CPU,
    dropout's noise is ``empty_like(x).bernoulli_(1 - p)`` (torch's ``_dropout_impl``), drawn here without
    the multiply by ones and the division: 30 against 56 ms for 2,048 x 1,536 on one thread, which over a
    block's seven adapters of SmolLM2-135M is 2.9 against 5.4 s a step of 2,048 tokens. Elsewhere dropout
    is a fused kernel with draws of its own, and runs as it is."""
    with torch.no_grad():
        if x.device.type == "cpu":
            return torch.empty_like(x).bernoulli_(1 - dropout.p).bool()
        return dropout(torch.ones_like(x)) != 0


class _LoraLinearFunction(torch.autograd.Function):
    """``linear(x, weight, bias) + scale * linear(linear(dropout(x), a), b)`` over 2-D ``x``. ``keep`` is the
    adapter's dropout mask (True where an element is kept, dropped at rate ``p``), or None without dropout."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        keep: torch.Tensor | None,
        p: float,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        a: torch.Tensor,
        b: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        dropped = x if keep is None else x * _dropout_factor(keep, p, x.dtype)
        projected = dropped @ a.t()
        out = F.linear(x, weight, bias).addmm_(projected, b.t(), alpha=scale)
        # the mask (a byte an element) rather than the dropped copy of x (four): the backward rebuilds it
        ctx.save_for_backward(x, keep, projected, weight, a, b)
        ctx.scale, ctx.p = scale, p
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, keep, projected, weight, a, b = ctx.saved_tensors
        wants_x, _, _, wants_weight, wants_bias, wants_a, wants_b, _ = ctx.needs_input_grad
        factor = None if keep is None else _dropout_factor(keep, ctx.p, x.dtype)
        grad_projected = (grad @ b).mul_(ctx.scale)
        grad_a = grad_projected.t() @ (x if factor is None else x * factor) if wants_a else None
        grad_b = (grad.t() @ projected).mul_(ctx.scale) if wants_b else None
        grad_x = None
        if wants_x:
            grad_x = grad @ weight
            if factor is None:  # both paths' gradients of x, summed in one buffer
                grad_x.addmm_(grad_projected, a)
            else:
                grad_x.add_((grad_projected @ a).mul_(factor))
        grad_weight = grad.t() @ x if wants_weight else None
        grad_bias = grad.sum(0) if wants_bias else None  # a None bias never wants a gradient
        return grad_x, None, None, grad_weight, grad_bias, grad_a, grad_b, None


class _SiblingInputCast:
    """The autocast copy of the input that the layer just called made, for the layers that read the same
    tensor next: a block's q, k and v projections read one normed input, its gate and up projections
    another. Each cast it itself before: three and two copies, each kept for the backward and cast back
    there, where one of each does (autograd sums the siblings' gradients into it). Only weak references:
    the copy lives as long as a forward's saved tensors hold it; an input changed in place since is cast
    again."""

    def __init__(self) -> None:
        self._last: tuple[weakref.ref[torch.Tensor], int, weakref.ref[torch.Tensor], bool] | None = None

    def cast(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if x.is_inference():  # no version counter to tell an in-place change by (and no backward to spare)
            return x.to(dtype)
        grad = torch.is_grad_enabled()
        if self._last is not None:
            source, version, copy, recorded = self._last
            held = copy()
            if (
                source() is x
                and x._version == version
                and recorded == grad
                and held is not None
                and held.dtype == dtype
            ):
                return held
        cast = x.to(dtype)
        self._last = (weakref.ref(x), x._version, weakref.ref(cast), grad)
        return cast


_SIBLING_INPUT = _SiblingInputCast()


class FusedLoraLinear(PeftLoraLinear):
    """peft's LoRA linear layer whose plain single-adapter forward is :class:`_LoraLinearFunction`. Anything
    else (a disabled, merged or mixed adapter, DoRA and the other variants, a bias on B, mismatched dtypes,
    a dropout other than ``nn.Dropout``) is peft's path."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        active = self.active_adapters
        name: str = active[0] if len(active) == 1 else ""
        autocast = torch.is_autocast_enabled(x.device.type)
        if (
            args
            or kwargs
            or self.disable_adapters
            or self.merged
            or name not in self.lora_A
            or name in self.lora_variant
            or self.lora_B[name].bias is not None
            or (not autocast and x.dtype != self.lora_A[name].weight.dtype)
            or not isinstance(self.lora_dropout[name], torch.nn.Identity | torch.nn.Dropout)
        ):
            return super().forward(x, *args, **kwargs)
        base: Any = self.get_base_layer()
        dropout = self.lora_dropout[name]
        keep, p = None, 0.0
        if isinstance(dropout, torch.nn.Dropout) and dropout.training and dropout.p > 0:
            keep, p = _dropout_mask(dropout, x), dropout.p
        weights = (base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight)
        if autocast:  # run in the autocast dtype, as F.linear would
            dtype = torch.get_autocast_dtype(x.device.type)
            x = _SIBLING_INPUT.cast(x, dtype)
            held = self._held_base(dtype)
            weights = held + tuple(w.to(dtype) for w in weights[2:])  # type: ignore[assignment]
        width = x.shape[-1]
        flat_keep = None if keep is None else keep.reshape(-1, width)
        with torch.autocast(x.device.type, enabled=False):
            out = _LoraLinearFunction.apply(x.reshape(-1, width), flat_keep, p, *weights, self.scaling[name])
        return out.view(*x.shape[:-1], out.shape[-1])  # type: ignore[no-any-return]

    def hold_base(self, dtype: torch.dtype) -> None:
        """Keep a ``dtype`` copy of the frozen base weight and bias for the forwards under autocast."""
        base: Any = self.get_base_layer()
        with torch.no_grad():
            copies = tuple(None if t is None else t.to(dtype) for t in (base.weight, base.bias))
        self._held = (_version_key(base.weight, base.bias), copies)

    def _held_base(self, dtype: torch.dtype) -> tuple[torch.Tensor | None, ...]:
        """The base weight and bias in ``dtype``: the held copy while it still matches them (same storage,
        same version: an in-place change such as loading a checkpoint invalidates it, and the copy is made
        again), a cast per forward where nothing is held or the base trains."""
        base: Any = self.get_base_layer()
        held = getattr(self, "_held", None)
        if held is None or held[1][0].dtype != dtype or base.weight.requires_grad:
            return tuple(None if t is None else t.to(dtype) for t in (base.weight, base.bias))
        if held[0] != _version_key(base.weight, base.bias):
            self.hold_base(dtype)
        return self._held[1]  # type: ignore[no-any-return]


def _version_key(*tensors: torch.Tensor | None) -> tuple[tuple[int, int, str], ...]:
    return tuple((t.data_ptr(), t._version, str(t.device)) for t in tensors if t is not None)


def hold_frozen_base(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Give every adapted linear layer of ``model`` a ``dtype`` copy of its frozen base weights, made once
    instead of in every forward, and return the copies' bytes (which the memory estimate counts:
    :func:`trainforge.planning.memory.bf16_linear_copies`).

    Under autocast, torch caches the casts of weights that require grad only; a LoRA model's base weights
    are frozen, so every forward cast each of them again: on SmolLM2-135M under bf16 on a CPU, 10-16% of a
    step went to those copies. The copy is held beside the fp32 weights rather than replacing them: the
    export merges the adapter into the fp32 base (a base checkpoint may be fp32, and the merged delta is
    small next to the weights: folded into bf16 it would be rounded away). It costs no more at the peak
    than before, when each forward's copies were kept for the backward until the end of the step. A model
    sharded by FSDP holds nothing: its blocks' weights are gathered for each forward, in bf16 already."""
    total = 0
    for module in model.modules():
        # FSDP's shards (DTensors) are gathered for each forward, in bf16 under autocast: nothing to hold
        if isinstance(module, FusedLoraLinear) and not isinstance(module.get_base_layer().weight, DTensor):
            module.hold_base(dtype)
            total += sum(t.numel() * t.element_size() for t in module._held[1] if t is not None)
    return total


#: ``lora_targets: attention``: the attention projections by the names decoder families give them (peft matches
#: a string target as a regex over each module's full name)
ATTENTION_PROJECTIONS = r".*\.(self_attn|attention|attn)\.(q_proj|k_proj|v_proj|o_proj|qkv_proj|query|key|value|dense)"


def lora_config(config: TrainConfig) -> Any:
    """peft's configuration of the job's adapter, as stock peft would build its layers from it."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if config.lora_targets == "all-linear" else ATTENTION_PROJECTIONS,
        task_type="CAUSAL_LM",
    )


def apply_lora(model: torch.nn.Module, config: TrainConfig) -> Any:
    from peft import get_peft_model

    lora = lora_config(config)
    lora._register_custom_module({torch.nn.Linear: FusedLoraLinear})  # peft's documented hook for custom layers
    return get_peft_model(model, lora)


def merge_lora(model: Any, adapter_dir: Path | None) -> torch.nn.Module:
    """Save the adapter (if asked) and return the base model with the adapter folded into its weights."""
    if adapter_dir is not None:
        model.save_pretrained(adapter_dir)
    return model.merge_and_unload()  # type: ignore[no-any-return]
