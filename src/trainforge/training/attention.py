"""Attention for packed sequences on a CPU: each document attends causally to itself alone, one
``scaled_dot_product_attention`` call per document. This module alone decides when that runs.

A packed row holds several documents, kept apart by a block-diagonal causal mask. Given a mask, SDPA's CPU
kernel computes the whole row's scores and masks most of them away: with ~4 documents in 256 tokens, over
80% of the products are thrown out. Cut at the document boundaries, each piece is a plain causal attention
over its own tokens, with no mask to build or apply. Measured with SmolLM2-135M's attention shapes (4 rows
of 256 tokens, 9 query and 3 key/value heads of 64, documents of 30-120 tokens): 13.5 ms per layer for
forward and backward against 20.4 ms with the mask.

When it runs, decided here (the loop, the objective and the batch read it, they do not decide):

- once per run, by :func:`use_packed_attention`: the device is a CPU (on a GPU the masked kernel is the
  right one: a loop of small launches would cost more than it saves) and the model's type is in
  :data:`PER_DOCUMENT_MODEL_TYPES`. Then the model is switched to this implementation, registered with
  transformers' ``AttentionInterface`` as ``trainforge_packed``; every other model keeps SDPA and its mask.
- per batch, by :func:`attention_inputs`: a switched model gets the documents' lengths
  (``document_lengths``, which :func:`trainforge.training.packing.collate` builds for every packed batch).
- per call, in :func:`packed_attention`: without lengths (DPO's padded rows, generation), with a cache (the
  query shorter than the keys), a sliding window or soft-capping, the call is plain SDPA with the model's
  mask, since the per-document call implements none of them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from trainforge.planning.memory import FP32_ATTENTION_DEVICES

PACKED_ATTENTION = "trainforge_packed"

# Architectures whose decoder layers dispatch through transformers' AttentionInterface and hand the forward's
# keyword arguments (``document_lengths``) down to it, as Llama's do; a test holds the loss and every gradient
# equal to the masked attention's. Its own list: which output head a model has (``PLAIN_HEAD_MODEL_TYPES``)
# does not decide which attention it runs.
PER_DOCUMENT_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    document_lengths: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``query`` is batch x heads x tokens x width, ``key`` and ``value`` may have fewer (grouped) heads;
    returns batch x tokens x heads x width, as transformers' attention functions do.

    Under bf16 autocast on a CPU the kernel runs in fp32 (:data:`FP32_ATTENTION_DEVICES`), and its output
    is cast to the autocast dtype, as autocast's SDPA would return it: torch's CPU SDPA is slower in bf16
    than in fp32, above all its backward, and most on short documents. Measured with SmolLM2-135M's
    attention shapes and layouts, forward and backward of one layer on one thread: 117 ms in bf16 against
    59 ms in fp32 for 8 rows of 256 tokens in documents of 30-120, 269 against 254 ms for 4 rows of 1,024
    in documents of 200-700. The masked call (the fallback below) takes as long either way (32 against 34
    ms, 4 rows of 256 with padding); it runs in fp32 too, so that the memory estimate has one rule for a
    CPU's attention. Llama-type models hand ``query`` and ``key`` over in fp32 already (rotary multiplies
    them by the residual stream's fp32 cos and sin) and ``value`` in bf16; autocast would cast all three
    down."""
    device = query.device.type
    autocast = torch.is_autocast_enabled(device)
    if device in FP32_ATTENTION_DEVICES and (autocast or query.dtype != torch.float32):
        dtype = torch.get_autocast_dtype(device) if autocast else query.dtype
        mask = (
            attention_mask.float()
            if attention_mask is not None and attention_mask.is_floating_point()
            else attention_mask
        )
        with torch.autocast(device, enabled=False):
            output, _ = packed_attention(
                module, query.float(), key.float(), value.float(), mask, dropout, scaling, document_lengths, **kwargs
            )
        return output.to(dtype), None
    if (
        document_lengths is None
        or query.shape[2] != key.shape[2]
        or kwargs.get("sliding_window") is not None
        or kwargs.get("softcap") is not None
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows = []
    for lengths, q, k, v in zip(
        document_lengths.tolist(), query.unbind(0), key.unbind(0), value.unbind(0), strict=True
    ):
        lengths = [length for length in lengths if length]
        # split (not slicing) so that the backward joins the pieces' gradients in one cat
        pieces = [
            F.scaled_dot_product_attention(
                q_part[None],
                k_part[None],
                v_part[None],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
                enable_gqa=True,
            )
            for q_part, k_part, v_part in zip(
                q.split(lengths, 1), k.split(lengths, 1), v.split(lengths, 1), strict=True
            )
        ]
        rows.append(torch.cat(pieces, 2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None


def use_packed_attention(model: torch.nn.Module, device_kind: str) -> bool:
    """Switch ``model`` (or the model inside a peft wrapper) to :func:`packed_attention` where it pays: on a
    CPU, for the types of :data:`PER_DOCUMENT_MODEL_TYPES`. Says whether it switched; a model it leaves keeps
    its attention (SDPA with the mask) and gets no document lengths."""
    inner = _base_model(model)
    if device_kind != "cpu" or getattr(inner.config, "model_type", None) not in PER_DOCUMENT_MODEL_TYPES:
        return False
    # registered here, where it is used, rather than as a side effect of importing this module
    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    # the mask SDPA gets, for the calls that fall back to it (without a registered mask, models pass none)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)
    inner.set_attn_implementation(PACKED_ATTENTION)
    return True


def attention_inputs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments a packed batch adds to the model's forward for its attention: the documents'
    lengths where :func:`use_packed_attention` switched the model (also inside a DDP or peft wrapper),
    nothing otherwise."""
    config = getattr(_base_model(model), "config", None)
    if getattr(config, "_attn_implementation", None) != PACKED_ATTENTION:
        return {}
    return {"document_lengths": batch["document_lengths"]}


def _base_model(model: torch.nn.Module) -> Any:
    """The transformers model inside a DDP (``module``) and a peft (``get_base_model``) wrapper."""
    inner: Any = getattr(model, "module", model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner
