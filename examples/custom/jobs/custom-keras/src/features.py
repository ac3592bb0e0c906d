"""The classifier's input, shared by training and evaluation: each review as hashed word counts."""

import json
import zlib
from pathlib import Path

import numpy as np

BUCKETS = 128


def features(text: str) -> np.ndarray:
    row = np.zeros(BUCKETS, dtype=np.float32)
    for word in text.lower().split():
        row[zlib.crc32(word.encode()) % BUCKETS] += 1.0
    return row


def examples(folder: Path, labels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features, label indices, label names) of every prompt/completion record under ``folder``."""
    rows = [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    names = labels or sorted({row["completion"].strip() for row in rows})
    x = np.stack([features(row["prompt"]) for row in rows])
    y = np.array([names.index(row["completion"].strip()) for row in rows], dtype=np.int32)
    return x, y, names
