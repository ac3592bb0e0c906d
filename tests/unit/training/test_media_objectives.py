"""The speech and image+text objectives: batches collated by the processor, loss only on the transcript
(and its end token) or the assistant's turns, clips resampled to 16 kHz; LoRA wraps the catalog's targets
and leaves everything else frozen."""

from __future__ import annotations

import torch

from tests.media_data import shape_dataset, tone_dataset
from trainforge.media.generation import load_media_model, speech_prefix
from trainforge.training.config import TrainConfig
from trainforge.training.media_objectives import build_media_objectives, load_media_trainable
from trainforge.training.tokenize import IGNORE


def test_speech_batches_label_the_transcript_only(tmp_path, tiny_whisper_dir):
    tone_dataset(tmp_path, copies=1, rate=22_050)  # not 16 kHz: the batch resamples
    processor, model = load_media_model(tiny_whisper_dir)
    objective = build_media_objectives(processor, tmp_path, None, TrainConfig(data_format="speech")).train
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
    objective = build_media_objectives(processor, tmp_path, None, TrainConfig(data_format="multimodal")).train
    batch = objective.batch([0, 2])
    assert batch["pixel_values"].shape[:2] == (2, 1) and "pixel_attention_mask" in batch
    for row in range(2):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE].tolist()
        answer = processor.tokenizer.decode(labelled, skip_special_tokens=True)
        assert answer in ("red square", "blue circle", "green triangle")
    assert torch.isfinite(objective.loss_sum(model, batch))


def test_lora_wraps_the_catalog_targets(tiny_whisper_dir, tiny_idefics3_dir):
    config = TrainConfig(method="lora", lora_rank=4)
    _, whisper = load_media_trainable(tiny_whisper_dir, config)
    trained = {name for name, p in whisper.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    assert any("encoder" in name and "fc1" in name for name in trained)
    _, vlm = load_media_trainable(tiny_idefics3_dir, config)
    trained = {name for name, p in vlm.named_parameters() if p.requires_grad}
    assert trained and all("text_model" in name and "lora_" in name for name in trained)  # vision stays frozen


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
        objective = build_media_objectives(processor, tmp_path / "data", None, config).train
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
