"""Replay: general text mixed into the training side only, at the asked share of its tokens."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from tests.conftest import chat
from trainforge.training.config import TrainConfig
from trainforge.training.data_setup import build_objectives
from trainforge.training.tokenize import encode_text


def test_replay_is_the_asked_share_of_training_tokens_and_never_validation(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = tmp_path / "train"
    train.mkdir()
    (train / "t.jsonl").write_text("".join(json.dumps(chat(f"question {i}", f"answer {i}")) + "\n" for i in range(40)))
    plain = build_objectives(tokenizer, train, None, TrainConfig(max_seq_len=1024, validation_fraction=0.2))
    mixed = build_objectives(
        tokenizer, train, None, TrainConfig(max_seq_len=1024, validation_fraction=0.2, replay_fraction=0.25)
    )
    replay = mixed.stats["replay_tokens"]
    assert "replay_tokens" not in plain.stats and mixed.stats["replay_examples"] > 0
    assert 0.25 <= replay / (plain.stats["tokens"] + replay) < 0.25 + 0.2  # whole paragraphs: a little over
    assert mixed.stats["tokens"] == plain.stats["tokens"] + replay
    assert mixed.stats["validation_examples"] == plain.stats["validation_examples"]
    assert len(mixed.validation) == len(plain.validation)
    # the user's own text replaces the shipped corpus
    own = tmp_path / "replay"
    own.mkdir()
    (own / "mine.txt").write_text("A sentence of my own about gardens and rain.\n")
    mine = build_objectives(
        tokenizer, train, None, TrainConfig(max_seq_len=1024, validation_fraction=0.2, replay_fraction=0.25), own
    )
    own_length = len(encode_text(tokenizer, "A sentence of my own about gardens and rain.").input_ids)
    assert mine.stats["replay_tokens"] % own_length == 0 and mine.stats["replay_tokens"] >= replay / 2
