"""Greedy answers of a speech or image+text model: one function each, shared by evaluation (its WER, exact
match and parity) and the server (``/v1/audio/transcriptions``, image chat), so the endpoint answers as
the evaluated model did. Imports torch: not part of the Lambdas' ``trainforge.media``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainforge.media.limits import TARGET_SAMPLE_RATE
from trainforge.media.models import media_modality


def load_media_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(processor, model) of a speech or image+text HF folder, as every reader of one loads it."""
    from transformers import AutoModelForImageTextToText, AutoModelForSpeechSeq2Seq

    from trainforge.media.processors import load_processor

    loader: Any = AutoModelForSpeechSeq2Seq if media_modality(model_dir) == "speech" else AutoModelForImageTextToText
    return load_processor(model_dir), loader.from_pretrained(model_dir, dtype=dtype)


def speech_prefix(tokenizer: Any, language: str | None) -> list[int]:
    """Whisper's decoder prompt: start, language (when the tokenizer knows it), task, no timestamps."""
    names = ["<|startoftranscript|>", f"<|{language}|>" if language else "", "<|transcribe|>", "<|notimestamps|>"]
    unknown = tokenizer.unk_token_id
    ids = [tokenizer.convert_tokens_to_ids(name) for name in names if name]
    return [i for i in ids if i is not None and i != unknown]


def transcribe(
    model: Any, processor: Any, samples: np.ndarray, language: str | None = None, max_new_tokens: int = 64
) -> str:
    """The transcript of 16 kHz mono ``samples``, decoded greedily after the task prompt."""
    device = next(model.parameters()).device
    features = processor.feature_extractor(samples, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="pt")
    prefix = speech_prefix(processor.tokenizer, language)
    room = getattr(model.config, "max_target_positions", max_new_tokens + len(prefix)) - len(prefix)
    with torch.no_grad():
        output = model.generate(
            input_features=features["input_features"].to(device, next(model.parameters()).dtype),
            decoder_input_ids=torch.tensor([prefix], device=device),
            max_new_tokens=min(max_new_tokens, room),  # the decoder holds max_target_positions in all
            do_sample=False,
        )
    ids = output[0].tolist()
    if ids[: len(prefix)] == prefix:  # some versions return the prompt, Whisper's own generate strips it
        ids = ids[len(prefix) :]
    return str(processor.tokenizer.decode(ids, skip_special_tokens=True)).strip()


def answer(
    model: Any, processor: Any, messages: list[dict[str, Any]], images: list[Any], max_new_tokens: int = 64
) -> str:
    """The assistant's greedy reply to ``messages`` (content parts, images as bare ``{"type": "image"}``
    parts) with ``images`` (Pillow images, in the order of those parts)."""
    device = next(model.parameters()).device
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[images] if images else None, return_tensors="pt").to(device)
    tokenizer = processor.tokenizer
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()
