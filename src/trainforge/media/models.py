"""Which HF folders hold a speech or image+text model: read from config.json (no torch), so the trainer,
the evaluator and the server take the same branch for the same folder."""

from __future__ import annotations

import json
from pathlib import Path

#: config.json ``model_type`` -> the catalog modality of the tier that trains it
MEDIA_MODEL_TYPES = {
    "whisper": "speech",
    "idefics3": "vision-text",
    "smolvlm": "vision-text",
    "qwen2_vl": "vision-text",
    "qwen2_5_vl": "vision-text",
}


def model_type(model_dir: Path) -> str:
    """config.json's ``model_type`` of an HF folder ("" when it names none)."""
    return str(json.loads((model_dir / "config.json").read_text()).get("model_type", ""))


def media_modality(model_dir: Path) -> str | None:
    """``speech`` or ``vision-text`` for a folder of a media model, None for a text model."""
    return MEDIA_MODEL_TYPES.get(model_type(model_dir))
