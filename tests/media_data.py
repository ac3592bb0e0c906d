"""Generated media datasets for the speech and multimodal tests: tones with their names (numpy +
soundfile) and shapes with their names (Pillow). Deterministic; nothing downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

TONES = {"low": 220.0, "mid": 660.0, "high": 1760.0}
SHAPES = {"red square": ("red", "square"), "blue circle": ("blue", "circle"), "green triangle": ("green", "triangle")}


def tone_dataset(folder: Path, copies: int = 8, rate: int = 22_050, seconds: float = 1.5) -> Path:
    """``copies`` clips of each tone (a little noise each, so no two files are equal) at ``rate`` Hz,
    and train.jsonl naming them; rate != 16 kHz so training resamples."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(copies):
        for name, hz in TONES.items():
            t = np.arange(int(seconds * rate)) / rate
            clip = 0.4 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(len(t))
            key = f"clips/{name.replace(' ', '-')}-{index}.wav"
            (folder / "clips").mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / key, clip.astype(np.float32), rate)
            rows.append({"audio": key, "text": name, "language": "en"})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def draw_shape(color: str, shape: str, size: int = 48, offset: int = 0) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (8 + offset, 8 + offset, size - 8 + offset // 2, size - 8 + offset // 2)
    if shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "circle":
        draw.ellipse(box, fill=color)
    else:
        draw.polygon([(size // 2, box[1]), (box[0], box[3]), (box[2], box[3])], fill=color)
    return image


def shape_dataset(folder: Path, copies: int = 8) -> Path:
    rows = []
    (folder / "shapes").mkdir(parents=True, exist_ok=True)
    for index in range(copies):
        for name, (color, shape) in SHAPES.items():
            key = f"shapes/{name.replace(' ', '-')}-{index}.png"
            draw_shape(color, shape, offset=index % 4).save(folder / key)
            question = {"type": "text", "text": "what is in the picture"}
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "image", "image": key}, question]},
                        {"role": "assistant", "content": name},
                    ]
                }
            )
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
