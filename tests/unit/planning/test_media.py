"""The speech and image+text estimates (``planning.media``): sizes against what torch builds, FLOPs and
activations against hand-computed numbers, the peak against the one measured on an H200, and the plan of a
speech and an image+text spec."""

from __future__ import annotations

import json

import pytest

from benchmarks.media_memory import SMOLVLM_256M, SMOLVLM_PROCESSOR, WHISPER_SMALL
from tests.unit.planning.shapes import report, spec
from tests.unit.planning.test_plan import plan
from trainforge.planning.media import MediaRows, MediaShape, MediaWorkload, forward_flops
from trainforge.planning.memory import RUNTIME_BYTES, GiB, estimate_peak
from trainforge.spec import Hyperparameters

# whisper-large-v3-turbo's config.json (the size fields): 32 encoder layers, a 4-layer decoder, 128 mel bins
WHISPER_TURBO = {
    **WHISPER_SMALL,
    "d_model": 1280,
    "encoder_layers": 32,
    "decoder_layers": 4,
    "encoder_attention_heads": 20,
    "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "decoder_ffn_dim": 5120,
    "num_mel_bins": 128,
    "vocab_size": 51866,
}


def whisper_small() -> MediaShape:
    shape = MediaShape.from_config(WHISPER_SMALL)
    assert shape is not None
    return shape


def smolvlm(processor=None) -> MediaShape:
    shape = MediaShape.from_config(
        SMOLVLM_256M, {"image_processor": SMOLVLM_PROCESSOR} if processor is None else processor
    )
    assert shape is not None
    return shape


def test_the_shapes_count_whisper_small_and_smolvlm_256m_by_hand():
    # encoder: 12 x (4 x 768^2 + 2 x 768 x 3,072 weights + 6,144 biases + 3,072 norm weights) + convolutions
    # 185,088 + 1,770,240 + positions 1,500 x 768 + final norm 1,536 = 88,154,112; decoder: 12 x 9,450,240 +
    # 51,865 x 768 embeddings (the head's too) + 448 x 768 positions + 1,536 = 153,580,800
    assert whisper_small().parameters == 241_734_912
    # rank 16 on q, k, v, out, fc1, fc2 of both stacks and the decoder's cross-attention:
    # 16 x (12 x (4 x 1,536 + 2 x 3,840) + 12 x (8 x 1,536 + 2 x 3,840))
    assert whisper_small().lora_parameters(16) == 6_488_064
    vlm = smolvlm()
    assert (vlm.tokens_per_tile, vlm.tiles_per_image, vlm.image_tokens) == (64, 17, 1088)  # (512/16/4)^2, 4x4+1
    assert vlm.parameters == 256_484_928  # the "256M" of its name
    assert vlm.lora_parameters(16) == 4_884_480  # the language model's alone: SmolLM2-135M's all-linear


def test_the_tiles_follow_the_processor_config():
    assert smolvlm({"image_processor": {"do_image_splitting": False}}).tiles_per_image == 1
    assert smolvlm({"size": {"longest_edge": 1536}, "max_image_size": {"longest_edge": 512}}).tiles_per_image == 10
    assert smolvlm({}).tiles_per_image == 17  # no processor config: SmolVLM's own


def test_the_shapes_count_what_torch_builds(tiny_whisper_dir, tiny_idefics3_dir):
    """The tiny models of both families, loaded and adapted as training loads them (the catalog's targets)."""
    from trainforge.training.config import TrainConfig
    from trainforge.training.media_objectives import load_media_trainable

    for folder, name in ((tiny_whisper_dir, "tiny-whisper-test"), (tiny_idefics3_dir, "tiny-idefics3-test")):
        config = json.loads((folder / "config.json").read_text())
        processor = json.loads((folder / "processor_config.json").read_text()) if "idefics" in name else None
        shape = MediaShape.from_config(config, processor)
        assert shape is not None
        _, model = load_media_trainable(folder, TrainConfig(method="full", base_model_id=name))
        assert shape.parameters == sum(p.numel() for p in model.parameters()), name
        _, adapted = load_media_trainable(folder, TrainConfig(method="lora", lora_rank=4, base_model_id=name))
        assert shape.lora_parameters(4) == sum(p.numel() for p in adapted.parameters() if p.requires_grad), name
    assert shape.tiles_per_image == 1 and shape.image_tokens == 4  # the tiny processor does not split


def test_a_smolvlm_config_is_counted_as_the_idefics3_it_is_built_from(tiny_idefics3_dir):
    """SmolVLM's own ``model_type`` (newer SmolVLM checkpoints) gets the image+text shape, not the text one."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = json.loads((tiny_idefics3_dir / "config.json").read_text())
    config = {
        **config,
        "model_type": "smolvlm",
        "vision_config": {**config["vision_config"], "model_type": "smolvlm_vision"},
    }
    shape = MediaShape.from_config(config, {"image_processor": {"do_image_splitting": False}})
    assert shape is not None and shape.kind == "vision-text"
    model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**config))
    assert shape.parameters == sum(p.numel() for p in model.parameters())


def test_the_encoder_runs_over_its_fixed_positions_whatever_the_transcript():
    shape = whisper_small()
    encoder, decoder = shape.parts(text_tokens=50, images=0, adapter=False)
    # 2 x 1,500 positions x 12 layers x 7,077,888 weights; 2 x 2 x 12 layers x 768 x 1,500 x 1,500
    assert forward_flops(encoder) == (254_803_968_000, 82_944_000_000)
    assert forward_flops(shape.parts(text_tokens=400, images=0, adapter=False)[0]) == forward_flops(encoder)
    # the decoder's cross-attention k and v run over the 1,500 encoder positions once per layer
    linear, _ = forward_flops(decoder)
    assert linear == 2 * 50 * 12 * (6 * 768**2 + 2 * 768 * 3072) + 2 * 1500 * 12 * 2 * 768**2
    full = MediaWorkload(shape, MediaRows(50, 50)).example_flops(Hyperparameters(), "full")
    longer = MediaWorkload(shape, MediaRows(400, 400)).example_flops(Hyperparameters(), "full")
    assert longer[1] / full[1] < 1.5  # 8x the transcript, well under 1.5x the work: the encoder dominates


def test_a_layer_keeps_what_autograd_keeps_per_position():
    encoder = whisper_small().encoder
    # bf16, full fine-tuning: two fp32 norm inputs (6,144), each linear's bf16 input (q, k, v, out, fc1: 768,
    # fc2: 3,072; 13,824), q, k, v and output (6,144), GELU's input (6,144)
    assert encoder.activation_bytes(2, None, False, 2) == 32_256
    # LoRA: the frozen layers keep nothing, each adapter its own bf16 input and a dropout mask (6,912 x 3),
    # and six rank-16 products
    assert encoder.activation_bytes(2, 16, True, 2) == 6_144 + 20_736 + 6_144 + 6_144 + 2 * 16 * 6


# measured on one H200 (benchmarks/media_memory.py, 2026-11-30; docs/planning.md): torch's peak allocated
# bytes of one bf16 training step at 64 text tokens a row
MEASURED_H200 = [
    ("whisper-small", "lora", 2, 3_510_803_456),
    ("whisper-small", "lora", 8, 8_992_393_216),
    ("whisper-small", "full", 2, 5_182_022_656),
    ("whisper-small", "full", 8, 9_689_524_736),
    ("smolvlm-256m", "lora", 2, 4_443_762_176),
    ("smolvlm-256m", "lora", 8, 13_094_471_680),
    ("smolvlm-256m", "full", 2, 19_617_707_520),
    ("smolvlm-256m", "full", 8, 67_205_174_784),
]


@pytest.mark.parametrize(("case", "method", "rows", "measured"), MEASURED_H200)
def test_the_estimate_comes_within_20_percent_of_the_h200_measurement(case, method, rows, measured):
    shape = whisper_small() if case == "whisper-small" else smolvlm()
    workload = MediaWorkload(shape, MediaRows(64, 64, 1.0 if case == "smolvlm-256m" else 0.0))
    estimate = estimate_peak(workload, Hyperparameters(batch_size=rows), method, device="cuda", bf16=True)
    allocated = estimate.total - RUNTIME_BYTES["cuda"]  # the CUDA context is outside torch's count
    assert 0.95 < allocated / measured < 1.2


def speech_report():
    return report().model_copy(update={"format": "speech", "audio_hours": 2.0})


def test_a_speech_plan_names_the_encoder_and_sizes_the_instance_from_it():
    job = spec(base_model="speech", method="full", compute="{instance_type: ml.g5.2xlarge}")
    planned = plan(job, WHISPER_SMALL, report=speech_report())
    assert planned.refusals == [] and planned.requested.verdict == "fits"
    assert planned.notes[0].startswith("speech: the encoder (12 layers) runs over 1,500 positions per example")
    work = planned.work
    assert work.sequences == work.examples and work.padding_fraction == 0  # one example a row, no packing
    memory, time = planned.requested.memory, planned.requested.time
    assert memory is not None and time is not None
    # 8 rows of the longest example (200 tokens) under the encoder's 1,500 positions each
    expected = estimate_peak(
        MediaWorkload(whisper_small(), MediaRows(68.52, 200)), Hyperparameters(), "full", device="cuda", bf16=True
    )
    assert memory.requested_bytes == pytest.approx(expected.total, rel=0.01)
    assert 10 * GiB < memory.requested_bytes < 0.85 * 24 * GiB
    # an average example's FLOPs over its row: far more per token than the text rule's 6 x 242M
    assert time.flops_per_token > 10 * 6 * whisper_small().parameters


def test_replay_searched_on_data_validation_found_to_be_speech_is_refused_by_the_plan():
    # the spec's format is auto, so the spec could not know; the report's detected format can
    job = spec(base_model="speech", method="full", tuning="{ranges: {replay_fraction: [0.0, 0.2]}}")
    refusals = plan(job, WHISPER_SMALL, report=speech_report()).refusals
    assert any(r.startswith("data.replay_fraction: data.format speech trains on no general text") for r in refusals)


def test_exact_match_on_data_validation_found_to_be_speech_is_refused_by_the_plan():
    job = spec(base_model="speech", method="full", tuning="{objective: exact_match}")
    refusals = plan(job, WHISPER_SMALL, report=speech_report()).refusals
    assert "tuning.objective: exact_match scores answers, and data.format speech has none to score; use eval_loss" in (
        refusals
    )


def test_full_fine_tuning_of_whisper_large_on_a_16_gib_gpu_is_refused_naming_lora():
    job = spec(base_model="speech", method="full", compute="{instance_type: ml.g4dn.xlarge}")
    # the turbo model's 4-layer decoder fits at micro-batch 1 with checkpointing; large-v3's 32 layers do not
    turbo = plan(job, WHISPER_TURBO, types=("ml.g4dn.xlarge",), report=speech_report())
    assert turbo.refusals == [] and turbo.requested.verdict == "adjusted"
    large = {**WHISPER_TURBO, "decoder_layers": 32}
    refused = plan(job, large, types=("ml.g4dn.xlarge",), report=speech_report())
    (reason,) = refused.refusals
    assert reason.startswith("full fine-tuning of speech (1.5B parameters) does not fit ml.g4dn.xlarge")
    assert "instead: method: lora on ml.g4dn.xlarge" in reason and refused.smallest_fitting in reason
    assert "max_seq_len" not in reason  # a media row is never cut to it: not a lever


def test_an_image_text_plan_counts_the_tiles_and_lowers_the_micro_batch_to_fit():
    images = report().model_copy(update={"format": "multimodal", "images": 1200})
    job = spec(base_model="multimodal", method="full", compute="{instance_type: ml.g5.2xlarge}")
    planned = plan(job, SMOLVLM_256M, report=images, processor={"image_processor": SMOLVLM_PROCESSOR})
    assert planned.notes[0].startswith(
        "image+text: the vision tower (12 layers) runs over each image's tiles (up to 17) of 1,024 patches, 64 "
        "image tokens per tile (1,088 per image"
    )
    option = planned.requested
    assert option.verdict == "adjusted" and option.memory is not None
    assert option.memory.requested_bytes > 60 * GiB  # 8 rows of 1,288 positions, the vision tower's activations
    assert option.memory.adjustments["batch_size"] < 8 and planned.refusals == []
    lora = plan(spec(base_model="multimodal", compute="{instance_type: ml.g5.2xlarge}"), SMOLVLM_256M, report=images)
    assert lora.requested.verdict == "fits"  # the frozen vision tower keeps no activations
