"""What a base model's ``config.json`` says about its size: the shapes the memory estimate (and a plan's
FLOPs) are computed from, without torch and without the weights.

Decoder-only transformers in the Llama family layout (Llama, Mistral, Mixtral, Qwen2/3): token
embeddings, ``layers`` blocks of grouped-query attention and a gated (SwiGLU) MLP, a final norm and an
output head that may share the embeddings' weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Architectures whose logits are exactly ``lm_head(final hidden state)`` (no soft-capping or scaling after the
# head; every catalog text model): for them the training loss projects only the labelled positions onto the
# vocabulary, in chunks (training/objectives.py), so no tokens x vocabulary tensor exists; other architectures
# go through the model's full logits, which the memory estimate counts.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


class UnknownArchitecture(ValueError):
    """The config lacks a size field the estimate needs (not a decoder-only transformer of this family)."""


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    vocab_size: int
    hidden_size: int
    #: the gated MLP's inner width (each expert's, for a mixture of experts)
    intermediate_size: int
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False
    #: experts per MLP and how many each token runs through (1 and 1 for a dense model)
    experts: int = 1
    experts_per_token: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        """From a parsed ``config.json`` (a multimodal model's ``text_config`` when it has one)."""
        text = config.get("text_config") or config
        missing = [
            key
            for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
            if not isinstance(text.get(key), int)
        ]
        if missing:
            raise UnknownArchitecture(
                f"config.json ({text.get('model_type', 'no model_type')}) has no {', '.join(missing)}: "
                "not a decoder-only transformer whose memory can be estimated"
            )
        heads = int(text["num_attention_heads"])
        return cls(
            model_type=str(text.get("model_type", "")),
            vocab_size=int(text["vocab_size"]),
            hidden_size=int(text["hidden_size"]),
            intermediate_size=int(text["intermediate_size"]),
            layers=int(text["num_hidden_layers"]),
            attention_heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or text["hidden_size"] // heads),
            tied_embeddings=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            attention_bias=bool(text.get("attention_bias", False)),
            mlp_bias=bool(text.get("mlp_bias", False)),
            experts=int(text.get("num_local_experts") or text.get("num_experts") or 1),
            experts_per_token=int(text.get("num_experts_per_tok") or 1),
        )

    @property
    def plain_head(self) -> bool:
        return self.model_type in PLAIN_HEAD_MODEL_TYPES

    @property
    def attention_width(self) -> int:
        """Query heads x head width: what attention outputs per token."""
        return self.attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_layers(self) -> list[tuple[int, int, int]]:
        """(in features, out features, copies) of every linear layer of one decoder block: what LoRA's
        ``all-linear`` adapts and what a block's weights are."""
        h, inner = self.hidden_size, self.intermediate_size
        return [
            (h, self.attention_width, 1),  # q
            (h, self.kv_width, 2),  # k, v
            (self.attention_width, h, 1),  # o
            (h, inner, 2 * self.experts),  # gate, up
            (inner, h, self.experts),  # down
        ]

    @property
    def block_parameters(self) -> int:
        weights = sum(fan_in * fan_out * copies for fan_in, fan_out, copies in self.linear_layers())
        router = self.hidden_size * self.experts if self.experts > 1 else 0
        attention_biases = (self.attention_width + 2 * self.kv_width) if self.attention_bias else 0
        return weights + router + attention_biases + 2 * self.hidden_size  # + two norms

    @property
    def parameters(self) -> int:
        embeddings = self.vocab_size * self.hidden_size
        head = 0 if self.tied_embeddings else embeddings
        return embeddings + head + self.layers * self.block_parameters + self.hidden_size

    def lora_parameters(self, rank: int) -> int:
        """An adapter of ``rank`` on every linear layer of every block (peft's ``all-linear``: not the head)."""
        return self.layers * sum(rank * (fan_in + fan_out) * copies for fan_in, fan_out, copies in self.linear_layers())
