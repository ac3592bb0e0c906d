"""LoRA through peft: adapters on every linear layer of the decoder, merged into the weights on export
so the output is a plain HF model any server can load (the adapter is saved beside it as well)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainforge.training.config import TrainConfig


def apply_lora(model: torch.nn.Module, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def merge_lora(model: Any, adapter_dir: Path | None) -> torch.nn.Module:
    """Save the adapter (if asked) and return the base model with the adapter folded into its weights."""
    if adapter_dir is not None:
        model.save_pretrained(adapter_dir)
    return model.merge_and_unload()  # type: ignore[no-any-return]
