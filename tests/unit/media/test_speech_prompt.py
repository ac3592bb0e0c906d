"""The decoder prompt a speech model trains on is the one it is asked with: training writes the language
most of its examples named into the exported generation config, where Whisper's own ``generate`` finds it
(and ``transcribe``, tests/unit/serving/test_media_routes.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from transformers import GenerationConfig

from tests.media_data import tone_dataset
from trainforge.local.opt_ml import prepare_training_tree
from trainforge.media.generation import (
    UnsupportedLanguage,
    default_language,
    dominant_language,
    is_english_only,
    load_media_model,
    save_speech_defaults,
    speech_prefix,
    transcribe,
)
from trainforge.training.config import TrainConfig
from trainforge.training.entrypoint import train_from_contract
from trainforge.training.media_objectives import build_media_objectives


def test_the_dominant_language_counts_the_prompts_as_trained(tiny_whisper_dir):
    tokenizer = load_media_model(tiny_whisper_dir)[0].tokenizer
    assert dominant_language(tokenizer, ["ja", "en", "ja", None]) == "ja"
    # "fr" has no token in the tiny tokenizer: its prompt had no language, like the unlabelled ones
    assert dominant_language(tokenizer, ["fr", None, "en"]) is None
    assert dominant_language(tokenizer, []) is None


def test_saved_defaults_give_whisper_generate_the_training_prompt(tmp_path, tiny_whisper_dir):
    folder = shutil.copytree(tiny_whisper_dir, tmp_path / "model")
    processor, model = load_media_model(folder)
    assert default_language(model) is None
    save_speech_defaults(folder, processor.tokenizer, "ja")
    processor, model = load_media_model(folder)
    assert default_language(model) == "ja"
    prompt = speech_prefix(processor.tokenizer, "ja")
    # Whisper's own generate, with no prompt given, starts from the saved language and task
    features = processor.feature_extractor(
        np.zeros(16_000, dtype=np.float32), sampling_rate=16_000, return_tensors="pt"
    )
    out = model.generate(input_features=features["input_features"], max_new_tokens=1, return_dict_in_generate=True)
    assert out.sequences[0, : len(prompt)].tolist() == prompt
    model.generation_config.language = "<|en|>"  # a token or a name is read as Whisper's generate reads it
    assert default_language(model) == "en"
    model.generation_config.language = "japanese"
    assert default_language(model) == "ja"


def test_saved_defaults_without_a_language_give_generate_the_prompt_with_none(tmp_path, tiny_whisper_dir):
    folder = shutil.copytree(tiny_whisper_dir, tmp_path / "model")
    processor, model = load_media_model(folder)
    save_speech_defaults(folder, processor.tokenizer, "ja")
    save_speech_defaults(folder, processor.tokenizer, None)  # a language saved before is taken back too
    processor, model = load_media_model(folder)
    assert default_language(model) is None and model.generation_config.lang_to_id  # the map stays
    prompt = speech_prefix(processor.tokenizer, None)
    features = processor.feature_extractor(
        np.zeros(16_000, dtype=np.float32), sampling_rate=16_000, return_tensors="pt"
    )
    detections = []
    model.detect_language = lambda *args, **kwargs: detections.append(1)  # a pass that must not run
    out = model.generate(input_features=features["input_features"], max_new_tokens=1, return_dict_in_generate=True)
    assert out.sequences[0, : len(prompt)].tolist() == prompt and not detections
    # transcribe forces its own prompt, so even a config that would detect (no language, no forced prompt)
    model.generation_config.forced_decoder_ids = None  # runs no detection pass
    transcribe(model, processor, np.zeros(16_000, dtype=np.float32), language="en", max_new_tokens=1)
    transcribe(model, processor, np.zeros(16_000, dtype=np.float32), max_new_tokens=1)
    assert not detections


def test_training_exports_its_language_and_transcription_without_one_uses_it(tmp_path, tiny_whisper_dir):
    data = tmp_path / "train"
    tone_dataset(data, copies=2)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    for row in rows[:4]:
        row["language"] = "ja"  # 4 ja, 2 en
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    hyper = TrainConfig(
        data_format="speech", method="full", max_steps=1, batch_size=2, validation_fraction=0, device="cpu"
    ).to_hyperparameters()
    root = prepare_training_tree(tmp_path / "opt" / "ml", {"train": data, "base_model": tiny_whisper_dir}, hyper)
    summary = train_from_contract(root)
    assert summary["language"] == "ja"
    config = json.loads((root / "model/generation_config.json").read_text())
    assert config["language"] == "ja" and config["task"] == "transcribe"
    assert default_language(load_media_model(root / "model")[1]) == "ja"


def test_an_english_only_whisper_trains_and_is_asked_with_start_and_no_timestamps(tmp_path, tiny_whisper_dir):
    base = shutil.copytree(tiny_whisper_dir, tmp_path / "base")
    config = GenerationConfig.from_pretrained(base)
    config.is_multilingual = False  # as the *.en checkpoints' generation config says
    config.save_pretrained(base)
    data = tmp_path / "train"
    tone_dataset(data, copies=2)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    for row in rows:
        row["language"] = "en"  # named, yet an English-only model's prompt has no language token
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    processor, model = load_media_model(base)
    tokenizer = processor.tokenizer
    prompt = [tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
    assert speech_prefix(tokenizer, "en", english_only=is_english_only(model.generation_config)) == prompt
    objectives = build_media_objectives(
        processor, data, None, TrainConfig(data_format="speech"), model.config, english_only=True
    )
    assert {tuple(example.prefix) for example in objectives.train.examples} == {tuple(prompt)}
    hyper = TrainConfig(
        data_format="speech", method="full", max_steps=1, batch_size=2, validation_fraction=0, device="cpu"
    ).to_hyperparameters()
    root = prepare_training_tree(tmp_path / "opt" / "ml", {"train": data, "base_model": base}, hyper)
    train_from_contract(root)
    saved = json.loads((root / "model/generation_config.json").read_text())
    assert not {"language", "task", "lang_to_id", "task_to_id"} & {k for k, v in saved.items() if v}
    processor, model = load_media_model(root / "model")
    features = processor.feature_extractor(
        np.zeros(16_000, dtype=np.float32), sampling_rate=16_000, return_tensors="pt"
    )
    # Whisper's own generate accepts the saved config (it refuses a language or task for English-only models)
    out = model.generate(input_features=features["input_features"], max_new_tokens=1, return_dict_in_generate=True)
    assert out.sequences[0, : len(prompt)].tolist() == prompt
    transcribe(model, processor, np.zeros(16_000, dtype=np.float32), language="en", max_new_tokens=1)


def test_an_english_only_whisper_refuses_another_language_where_it_is_named(tmp_path, tiny_whisper_dir):
    tokenizer = load_media_model(tiny_whisper_dir)[0].tokenizer
    for english in ("en", "english", "<|en|>", None):
        speech_prefix(tokenizer, english, english_only=True)
    with pytest.raises(UnsupportedLanguage, match="'ja': the model is an English-only Whisper"):
        speech_prefix(tokenizer, "ja", english_only=True)
    data = tmp_path / "train"
    tone_dataset(data, copies=1)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows[1]["language"] = "japanese"  # trained under a prompt without it, the model would learn nothing of it
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    processor, model = load_media_model(tiny_whisper_dir)
    with pytest.raises(UnsupportedLanguage, match=f"the record of {rows[1]['audio']}: language 'japanese'"):
        build_media_objectives(
            processor, data, None, TrainConfig(data_format="speech"), model.config, english_only=True
        )
