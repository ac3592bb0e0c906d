"""From channel folders to training objectives: read, split (by example hash, exactly as the validation
report counted it), tokenize, pack."""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from trainforge.contracts import DataFormat
from trainforge.data.records import load_records
from trainforge.data.split import selection_split, split_records
from trainforge.training.config import TrainConfig
from trainforge.training.objectives import DirectPreference, LanguageModeling, Objective, PreferencePair
from trainforge.training.packing import pack
from trainforge.training.tokenize import Example, encode_record, encode_text, preference_prompt


@dataclass
class Objectives:
    train: Objective
    validation: Objective | None
    data_format: DataFormat
    stats: dict[str, Any]


def replay_texts(replay_dir: Path | None) -> list[str]:
    """The general text to replay: the user's (channel ``replay``: text files, or JSONL of ``{"text": ...}``),
    else the public-domain corpus shipped with TrainForge (``replay/README.md``)."""
    if replay_dir is not None:
        return [str(record["text"]) for record in load_records(replay_dir, "text")[1] if record.get("text")]
    text = resources.files("trainforge.training").joinpath("replay/general_text.txt").read_text(encoding="utf-8")
    return [paragraph.strip() for paragraph in text.split("\n\n") if paragraph.strip()]


def replay_examples(tokenizer: Any, texts: list[str], fraction: float, task_tokens: int, seed: int) -> list[Example]:
    """General-text examples whose tokens are ``fraction`` of the mix (task plus replay), drawn in a seeded
    order and cycled when the corpus is shorter than that."""
    if fraction <= 0 or not texts:
        return []
    wanted = fraction / (1 - fraction) * task_tokens
    encoded = [encode_text(tokenizer, text) for text in texts]
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    chosen: list[Example] = []
    tokens = 0
    while tokens < wanted:
        example = encoded[order[len(chosen) % len(order)]]
        chosen.append(example)
        tokens += len(example.input_ids)
    return chosen


def _language_modeling(
    tokenizer: Any,
    records: list[dict[str, Any]],
    fmt: DataFormat,
    config: TrainConfig,
    replay: list[str] | None = None,
) -> tuple[LanguageModeling, dict[str, Any]]:
    examples = [encode_record(tokenizer, record, fmt) for record in records]
    replayed = replay_examples(
        tokenizer, replay or [], config.replay_fraction, sum(len(e.input_ids) for e in examples), config.seed
    )
    sequences, stats = pack(examples + replayed, config.max_seq_len)
    objective = LanguageModeling(
        sequences,
        config.max_seq_len,
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    return objective, {
        "examples": len(examples),
        "sequences": stats.sequences,
        "tokens": stats.tokens,
        "padding_waste": round(stats.padding_waste, 4),
        "truncated_examples": stats.truncated,
        **(
            {"replay_examples": len(replayed), "replay_tokens": sum(len(e.input_ids) for e in replayed)}
            if replayed
            else {}
        ),
    }


def _preference(tokenizer: Any, records: list[dict[str, Any]], config: TrainConfig) -> DirectPreference:
    pairs = []
    eos = [tokenizer.eos_token_id]
    for record in records:
        prompt = tokenizer(preference_prompt(tokenizer, record), add_special_tokens=False)["input_ids"]
        chosen = tokenizer(record["chosen"], add_special_tokens=False)["input_ids"] + eos
        rejected = tokenizer(record["rejected"], add_special_tokens=False)["input_ids"] + eos
        pairs.append(PreferencePair(prompt, chosen, rejected))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return DirectPreference(pairs, config.max_seq_len, pad, config.dpo_beta)


class Split(NamedTuple):
    """The records a run trains on and those it scores, and the folder the scored ones' media files live in
    (their ``audio``/``image`` references are relative to it)."""

    data_format: DataFormat
    train: list[dict[str, Any]]
    held_out: list[dict[str, Any]]
    held_out_dir: Path


def split_channels(train_dir: Path, validation_dir: Path | None, config: TrainConfig) -> Split:
    """The one owner of the train/held-out split, for text and media runs alike: the validation channel when
    given, else the seeded hash split of the training records; a tuning trial (``config.selection_fraction``)
    then splits its training side again and is scored on that slice, never on the run's held-out examples.
    The held-out media live in the training folder whenever the held-out records came from the training side."""
    fmt, records = load_records(train_dir, config.data_format)
    held_out_dir = train_dir
    if validation_dir is not None:
        held_out = load_records(validation_dir, fmt)[1]
        held_out_dir = validation_dir
    elif config.validation_fraction > 0:
        records, held_out = split_records(records, fmt, config.split_seed, config.validation_fraction)
    else:
        held_out = []
    if config.selection_fraction > 0:  # a tuning trial: chosen on its own slice, never on the run's held-out
        records, held_out = selection_split(records, fmt, config.split_seed, config.selection_fraction)
        held_out_dir = train_dir
    return Split(fmt, records, held_out, held_out_dir)


def build_objectives(
    tokenizer: Any,
    train_dir: Path,
    validation_dir: Path | None,
    config: TrainConfig,
    replay_dir: Path | None = None,
) -> Objectives:
    """The training and validation objectives; replayed general text (``config.replay_fraction``) joins the
    training side only, so validation loss stays the task's."""
    fmt, train_records, held_out, _ = split_channels(train_dir, validation_dir, config)
    if config.method == "dpo":
        if fmt != "preference":
            raise ValueError(f"method dpo needs preference data, the data is {fmt}")
        train = _preference(tokenizer, train_records, config)
        validation = _preference(tokenizer, held_out, config) if held_out else None
        return Objectives(
            train, validation, fmt, {"examples": len(train_records), "validation_examples": len(held_out)}
        )
    if fmt == "preference":
        raise ValueError("preference data trains with method: dpo")
    replay = replay_texts(replay_dir) if config.replay_fraction > 0 else []
    lm_train, stats = _language_modeling(tokenizer, train_records, fmt, config, replay)
    lm_validation = _language_modeling(tokenizer, held_out, fmt, config)[0] if held_out else None
    stats["validation_examples"] = len(held_out)
    return Objectives(lm_train, lm_validation, fmt, stats)
