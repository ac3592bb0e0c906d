"""Configs, dataset reports and specs the planning tests share: configs as their config.json files give
them (size fields only), reports as validation writes them."""

from __future__ import annotations

from typing import Any

from trainforge.contracts import DatasetReport, SplitStats, TokenStats
from trainforge.spec import JobSpec, parse_spec

# Llama-3.1-8B-Instruct's config.json (the size fields)
LLAMA_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}
# SmolLM2-135M-Instruct's
SMOLLM2: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}
# a GPT-NeoX: vLLM serves it, Bedrock Custom Model Import does not take it
NEOX: dict[str, Any] = {
    "architectures": ["GPTNeoXForCausalLM"],
    "model_type": "gpt_neox",
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 384,
    "max_position_embeddings": 512,
}


def report(examples: int = 1200, histogram: dict[str, int] | None = None, total: int = 82_217) -> DatasetReport:
    """A chat dataset of ``examples`` (the quickstart's lengths by default), 5% held out."""
    histogram = histogram or {"<=64": 600, "<=128": 598, "<=256": 2}
    stats = TokenStats(
        tokenizer="smollm2-135m-instruct",
        total_tokens=total,
        mean_tokens=round(total / examples, 2),
        max_tokens=200,
        p50_tokens=64,
        p95_tokens=120,
        truncated_examples=0,
        max_seq_len=1024,
        histogram=histogram,
    )
    held = examples // 20
    return DatasetReport(
        ok=True,
        files=["s3://data/datasets/chat/train.jsonl"],
        format="chat",
        format_detected=False,
        bytes_read=examples * 300,
        records=examples,
        valid_records=examples,
        errors=[],
        token_stats=stats,
        split=SplitStats(seed=0, validation_fraction=0.05, train_examples=examples - held, validation_examples=held),
    )


def spec(**sections: str) -> JobSpec:
    """A job spec; each keyword is a section's YAML flow mapping (e.g. ``compute="{instance_type: ml.g5.xlarge}"``)."""
    lines = ["name: plan-test", f"base_model: {sections.pop('base_model', 'pro')}"]
    lines.append(f"method: {sections.pop('method', 'lora')}")
    lines.append("data: {train: datasets/chat/train.jsonl, validation_fraction: 0.05}")
    lines += [f"{name}: {value}" for name, value in sections.items()]
    return parse_spec("\n".join(lines))
