"""The speech and image+text objectives: batches collated by the processor, loss only on the transcript
(and its end token) or the assistant's turns, clips resampled to 16 kHz; LoRA wraps the catalog's targets
and leaves everything else frozen."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tests.media_data import draw_shape, shape_dataset, tone_dataset
from trainforge.catalog import CATALOG
from trainforge.media.generation import load_media_model, speech_prefix
from trainforge.training.config import TrainConfig
from trainforge.training.media_objectives import build_media_objectives, load_media_trainable
from trainforge.training.tokenize import IGNORE


def test_speech_batches_label_the_transcript_only(tmp_path, tiny_whisper_dir):
    tone_dataset(tmp_path, copies=1, rate=22_050)  # not 16 kHz: the batch resamples
    processor, model = load_media_model(tiny_whisper_dir)
    objective = build_media_objectives(processor, tmp_path, None, TrainConfig(data_format="speech"), model.config).train
    batch = objective.batch([0, 1])
    assert batch["input_features"].shape == (2, 80, 200)  # the tiny model's 2-second window of mel frames
    prefix = speech_prefix(processor.tokenizer, "en")
    assert batch["decoder_input_ids"][0, : len(prefix)].tolist() == prefix
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE].tolist()
    text = processor.tokenizer.decode(labelled[:-1])
    assert text.strip() in ("low", "mid", "high") and labelled[-1] == processor.tokenizer.eos_token_id
    assert (batch["labels"][0, : len(prefix) - 1] == IGNORE).all()  # the task prompt carries no loss
    loss = objective.loss_sum(model, batch) / objective.count(batch)
    loss.backward()
    assert torch.isfinite(loss)


def test_image_text_batches_label_the_assistant_turns_only(tmp_path, tiny_idefics3_dir):
    shape_dataset(tmp_path, copies=1)
    processor, model = load_media_model(tiny_idefics3_dir)
    config = TrainConfig(data_format="multimodal")
    objective = build_media_objectives(processor, tmp_path, None, config, model.config).train
    batch = objective.batch([0, 2])
    assert batch["pixel_values"].shape[:2] == (2, 1) and "pixel_attention_mask" in batch
    tokenizer = processor.tokenizer
    answers = {tuple(tokenizer(name)["input_ids"]) for name in ("red square", "blue circle", "green triangle")}
    for row in range(2):
        labels = batch["labels"][row]
        assert (labels[batch["input_ids"][row] == model.config.image_token_id] == IGNORE).all()
        labelled = labels[labels != IGNORE].tolist()
        assert tuple(labelled[:-1]) in answers and labelled[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert torch.isfinite(objective.loss_sum(model, batch))


def test_qwen2_vl_batches_label_the_assistant_turns_of_its_own_template(tmp_path, tiny_qwen2_vl_dir):
    """Qwen2-VL's template opens with a default system turn and renders each image as
    ``<|vision_start|><|image_pad|><|vision_end|>``, which the processor expands to the image's merged patches
    (``image_grid_thw``): only the answer and its ``<|im_end|>`` carry loss, wherever the image tokens fell."""
    shape_dataset(tmp_path, copies=1)
    processor, model = load_media_model(tiny_qwen2_vl_dir)
    config = TrainConfig(data_format="multimodal")
    objective = build_media_objectives(processor, tmp_path, None, config, model.config).train
    batch = objective.batch([0, 2])
    assert batch["image_grid_thw"].tolist() == [[1, 6, 6], [1, 6, 6]]  # 48x48 pixels in 8-pixel patches
    assert "mm_token_type_ids" in batch  # the multimodal rotary positions read them
    tokenizer, end = processor.tokenizer, processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row, name in enumerate(("red square", "green triangle")):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        assert int((ids == model.config.image_token_id).sum()) == 9  # 36 patches, merged 2x2
        assert labels[labels != IGNORE].tolist() == [*tokenizer(name)["input_ids"], end]
        first = int((labels != IGNORE).nonzero()[0, 0])
        assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")
        assert "You are a helpful assistant." in tokenizer.decode(ids[:first])
    assert torch.isfinite(objective.loss_sum(model, batch))


#: SmolVLM's own template (transformers models/smolvlm/processing_smolvlm.py, DEFAULT_CHAT_TEMPLATE, videos
#: left out): ``User:<image>...`` and ``Assistant: words``, so in context an answer is read after a space, and
#: each turn ends with ``<end_of_utterance>``, not the tokenizer's eos
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'] is string %}{{': ' + message['content']}}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def test_smolvlm_template_labels_each_answer_as_read_in_context(tmp_path, tiny_idefics3_dir):
    """Labels come from where each assistant turn sits in the rendered text: its words as tokenized there
    (after ``Assistant:``'s space) and ``<end_of_utterance>``; a user turn saying the same words is left out."""
    draw_shape("red", "square").save(tmp_path / "red.png")
    question = [{"type": "image", "image": "red.png"}, {"type": "text", "text": "what is in the picture"}]
    turns = [("user", question), ("assistant", "red square"), ("user", "red square"), ("assistant", "yes")]
    record = {"messages": [{"role": role, "content": content} for role, content in turns]}
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    processor, model = load_media_model(tiny_idefics3_dir)
    processor.chat_template = SMOLVLM_TEMPLATE
    config = TrainConfig(data_format="multimodal")
    batch = build_media_objectives(processor, tmp_path, None, config, model.config).train.batch([0])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    tokenizer = processor.tokenizer
    end = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    expected = [*tokenizer(" red square")["input_ids"], end, *tokenizer(" yes")["input_ids"], end]
    assert labels[labels != IGNORE].tolist() == expected
    assert (labels[ids == model.config.image_token_id] == IGNORE).all()
    labelled = (labels != IGNORE).nonzero().flatten().tolist()
    starts = [p for p in labelled if p - 1 not in labelled]
    assert len(starts) == 2 and all(tokenizer.decode(ids[:p]).endswith("Assistant:") for p in starts)


def test_a_template_whose_prompt_differs_from_its_turns_is_refused(tmp_path, tiny_idefics3_dir):
    """Where the generation prompt is not how the template renders an assistant turn, which tokens the
    assistant says cannot be told: refused, not guessed."""
    shape_dataset(tmp_path, copies=1)
    processor, model = load_media_model(tiny_idefics3_dir)
    processor.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {% for p in m['content'] %}{{ p.get('text', '') }}{% endfor %}\n"
        "{% endfor %}{% if add_generation_prompt %}bot:{% endif %}"
    )
    with pytest.raises(ValueError, match="'red square', the chat template does not render message 2"):
        build_media_objectives(processor, tmp_path, None, TrainConfig(data_format="multimodal"), model.config)


def test_a_transcript_longer_than_the_decoder_is_refused(tmp_path, tiny_whisper_dir):
    """Validation bounds transcripts in characters; the decoder holds max_target_positions tokens."""
    rows = [{"audio": "clips/short.wav", "text": "hello"}, {"audio": "clips/long.wav", "text": "hello " * 80}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    processor, model = load_media_model(tiny_whisper_dir)
    with pytest.raises(ValueError, match=r"clips/long\.wav .* exceeds the 64 positions"):
        build_media_objectives(processor, tmp_path, None, TrainConfig(data_format="speech"), model.config)


def test_replay_asked_of_a_speech_run_is_refused_not_ignored(tmp_path, tiny_whisper_dir):
    tone_dataset(tmp_path, copies=1)
    processor, model = load_media_model(tiny_whisper_dir)
    config = TrainConfig(data_format="auto", replay_fraction=0.1)  # the spec let it through: the format was auto
    with pytest.raises(ValueError, match=r"data\.replay_fraction: a speech run replays no general text"):
        build_media_objectives(processor, tmp_path, None, config, model.config)


def test_lora_wraps_the_catalog_targets(tiny_whisper_dir, tiny_idefics3_dir):
    config = TrainConfig(method="lora", lora_rank=4)
    _, whisper = load_media_trainable(tiny_whisper_dir, config)
    trained = {name for name, p in whisper.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    assert any("encoder" in name and "fc1" in name for name in trained)
    _, vlm = load_media_trainable(tiny_idefics3_dir, config)
    trained = {name for name, p in vlm.named_parameters() if p.requires_grad}
    assert trained and all("text_model" in name and "lora_" in name for name in trained)  # vision stays frozen


def test_lora_on_qwen2_vl_wraps_the_language_model_only(tiny_qwen2_vl_dir):
    """By the catalog entry, or by the folder's model_type for a base given as a folder URI: the language
    model's projections; the vision tower (``model.visual``) and its merger stay frozen."""
    for base in ("tiny-qwen2-vl-test", ""):
        _, vlm = load_media_trainable(tiny_qwen2_vl_dir, TrainConfig(method="lora", lora_rank=4, base_model_id=base))
        trained = {name for name, p in vlm.named_parameters() if p.requires_grad}
        layers = vlm.base_model.model.config.text_config.num_hidden_layers
        assert len(trained) == 2 * 7 * layers  # A and B of q, k, v, o, gate, up, down in every layer
        assert all(".language_model." in name and "lora_" in name for name in trained)


def test_lora_reads_the_targets_of_the_catalog_entry(monkeypatch, tiny_idefics3_dir):
    entry = dataclasses.replace(CATALOG["tiny-idefics3-test"], lora_targets=(r".*text_model.*\.q_proj",))
    monkeypatch.setitem(CATALOG, "tiny-idefics3-test", entry)
    config = TrainConfig(method="lora", lora_rank=4, base_model_id="tiny-idefics3-test")
    _, vlm = load_media_trainable(tiny_idefics3_dir, config)
    trained = {name for name, p in vlm.named_parameters() if p.requires_grad}
    assert trained and all("text_model" in name and ".q_proj.lora_" in name for name in trained)


def test_a_resumed_speech_run_ends_bit_identical(tmp_path, tiny_whisper_dir):
    """The loop's exact resume holds for the processor-collated objective too: batches are a pure function
    of (seed, step), so a run resumed from its step-2 checkpoint ends with the uninterrupted run's weights."""
    import shutil

    from trainforge.training.devices import select_device
    from trainforge.training.distributed import World
    from trainforge.training.loop import run_training

    tone_dataset(tmp_path / "data", copies=1)
    config = TrainConfig(
        data_format="speech",
        method="full",
        max_steps=4,
        batch_size=2,
        checkpoint_every=1,
        keep_checkpoints=10,
        eval_every=100,
        precision="fp32",
        learning_rate=0.01,
    )
    device, world = select_device("cpu", "fp32"), World(0, 1, 0)

    def train(checkpoints, records):
        torch.manual_seed(0)
        processor, model = load_media_trainable(tiny_whisper_dir, config)
        objective = build_media_objectives(processor, tmp_path / "data", None, config, model.config).train
        run_training(model, objective, None, config, device, world, checkpoints, records.append)
        return model.state_dict()

    first: list[dict] = []
    reference = train(tmp_path / "run", first)
    for later in ("step-00000003", "step-00000004"):
        shutil.rmtree(tmp_path / "run" / later)  # as if killed after step 2
    second: list[dict] = []
    resumed = train(tmp_path / "run", second)
    assert second[0] == {"event": "resumed", "step": 2} and [r["step"] for r in second[1:]] == [3, 4]
    assert [r["loss"] for r in second[1:]] == [r["loss"] for r in first[2:]]
    assert all(torch.equal(reference[name], resumed[name]) for name in reference)


def test_a_speech_tuning_trial_is_scored_on_the_training_side_never_on_the_runs_held_out(tmp_path, tiny_whisper_dir):
    """The split is ``data_setup.split_channels``'s for media runs too: a trial (``selection_fraction``)
    scores on a slice of the run's training side, with its media read from the training folder."""
    tone_dataset(tmp_path / "train", copies=8)
    tone_dataset(tmp_path / "validation", copies=2)
    processor, model = load_media_model(tiny_whisper_dir)
    base = TrainConfig(data_format="speech", validation_fraction=0.25, split_seed=3)
    run = build_media_objectives(processor, tmp_path / "train", None, base, model.config)
    trial_config = TrainConfig(data_format="speech", validation_fraction=0.25, split_seed=3, selection_fraction=0.3)
    trial = build_media_objectives(processor, tmp_path / "train", None, trial_config, model.config)
    held_out = {e.audio for e in run.validation.examples}
    trained = {e.audio for e in run.train.examples}
    scored = {e.audio for e in trial.validation.examples}
    assert held_out and scored and scored <= trained and not scored & held_out
    assert not scored & {e.audio for e in trial.train.examples}
    # with a validation channel, the trial's slice still comes from (and its clips live in) the training folder
    channel = build_media_objectives(processor, tmp_path / "train", tmp_path / "validation", trial_config, model.config)
    assert {e.folder for e in channel.validation.examples} == {tmp_path / "train"}
    assert len(channel.train) + len(channel.validation) == 24  # all of train, none of the validation channel
