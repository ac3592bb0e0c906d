"""Which HF folders hold a speech or image+text model: read from config.json (no torch), so the trainer,
the evaluator and the server take the same branch for the same folder."""

from __future__ import annotations

import json
from pathlib import Path

#: config.json ``model_type`` -> the catalog modality of the tier that trains it
MEDIA_MODEL_TYPES = {"whisper": "speech", "idefics3": "vision-text", "smolvlm": "vision-text"}


def media_modality(model_dir: Path) -> str | None:
    """``speech`` or ``vision-text`` for a folder of a media model, None for a text model."""
    config = json.loads((model_dir / "config.json").read_text())
    return MEDIA_MODEL_TYPES.get(str(config.get("model_type", "")))
