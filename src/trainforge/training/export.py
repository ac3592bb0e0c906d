"""Export: always a plain HF folder that from_pretrained, lm-eval, vLLM and Bedrock import can read:
config.json, model.safetensors, tokenizer files with the chat template, generation_config.json, and
trainforge.json with the lineage (base model, spec hash, data hashes, metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainforge.training.lora import merge_lora

LINEAGE_FILE = "trainforge.json"


def export_model(
    model: Any,
    tokenizer: Any,
    base_dir: Path,
    model_dir: Path,
    *,
    is_lora: bool,
    lineage: dict[str, Any],
) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    if is_lora:
        model = merge_lora(model, model_dir / "adapter")
    model = model.to(torch.float32) if next(model.parameters()).dtype != torch.float32 else model
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    generation = base_dir / "generation_config.json"
    if generation.is_file():
        (model_dir / "generation_config.json").write_text(generation.read_text())
    (model_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str))
    return model_dir
