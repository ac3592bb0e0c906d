"""Real public conversations that ship in PyPI packages, converted to TrainForge's chat JSONL.

The quickstart and the benchmarks need real text under a permissive licence with no download at run
time: ``chitchat-dataset`` (MIT, BYU PCC lab, 7,168 human conversations) is installed from PyPI and
located on disk, not fetched.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

from trainforge.errors import UsageError

CHITCHAT_PACKAGE = "chitchat_dataset"


def _chitchat_file() -> Path:
    spec = importlib.util.find_spec(CHITCHAT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the quickstart dataset needs the chitchat-dataset package: pip install chitchat-dataset")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset.json"


def chitchat_examples(limit: int, *, seed: int = 0, max_chars: int = 400) -> list[dict[str, Any]]:
    """One chat example per exchange: a turn of one speaker as the user, the reply as the assistant.

    Turns are the consecutive messages of one sender joined; exchanges longer than ``max_chars`` are
    skipped so the quickstart's examples stay short enough for a 2-core laptop.
    """
    conversations = json.loads(_chitchat_file().read_text())
    examples = []
    for conversation_id in sorted(conversations):
        turns = [
            " ".join(message["text"].strip() for message in turn) for turn in conversations[conversation_id]["messages"]
        ]
        for user, assistant in zip(turns[0::2], turns[1::2], strict=False):
            if user and assistant and len(user) + len(assistant) <= max_chars:
                examples.append(
                    {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
                )
    random.Random(seed).shuffle(examples)
    return examples[:limit]


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
