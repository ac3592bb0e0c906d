"""Tiny speech and image+text models built from their families' real configs (Whisper, Idefics3 as in
SmolVLM, Qwen2-VL), with random seeded weights and a saved processor, so tests and smoke runs load them through the
same code that loads a real HF folder (``AutoProcessor``, ``AutoModelForSpeechSeq2Seq``,
``AutoModelForImageTextToText``). The tokenizer is the tiny text model's, with the family's special tokens
added; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainforge.training.tiny import tiny_tokenizer

#: Whisper's task tokens, and the language tokens the tiny model knows (a real Whisper knows 99 languages)
WHISPER_SPECIALS = ["<|startoftranscript|>", "<|en|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]
#: the tiny Whisper hears 2-second windows (a real one 30 s): 200 mel frames, 100 encoder positions
TINY_WHISPER_SECONDS = 2
#: a chat template that renders content parts (SmolVLM's shape, ChatML's markers)
PARTS_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Qwen2-VL's own chat template (https://huggingface.co/Qwen/Qwen2-VL-7B-Instruct/blob/main/chat_template.json):
#: ChatML with a default system turn, each image as ``<|vision_start|><|image_pad|><|vision_end|>``
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Qwen2-VL's vision tokens, as its tokenizer names them
QWEN2_VL_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def build_tiny_whisper(path: Path, *, d_model: int = 64, layers: int = 1, seed: int = 0) -> Path:
    """A randomly initialised Whisper with a WhisperFeatureExtractor (80 mel bins) and a tokenizer."""
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS})
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16_000, chunk_length=TINY_WHISPER_SECONDS)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=d_model * 2,
        decoder_ffn_dim=d_model * 2,
        max_source_positions=extractor.nb_max_frames // 2,
        max_target_positions=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=start,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=start,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    generation = GenerationConfig(
        decoder_start_token_id=start,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=32,
    )
    return _write(path, WhisperForConditionalGeneration, config, seed, tokenizer, extractor, generation)


def build_tiny_idefics3(path: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised Idefics3 (SmolVLM's architecture): a one-layer SigLIP-style vision encoder
    on 64x64 images (16 patches, pixel-shuffled to 4 image tokens) and a tiny Llama, with the processor."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]}
    )
    images = Idefics3ImageProcessorPil(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 64}, do_image_splitting=False
    )
    processor = Idefics3Processor(
        image_processor=images, tokenizer=tokenizer, image_seq_len=4, chat_template=PARTS_TEMPLATE
    )
    tokenizer.chat_template = PARTS_TEMPLATE
    text = _text_config(tokenizer, hidden_size, layers, model_type="llama")
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 16,
    }
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )
    generation = _generation_config(tokenizer)
    return _write(path, Idefics3ForConditionalGeneration, config, seed, processor, generation)


def build_tiny_qwen2_vl(path: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised Qwen2-VL with its processor (``media/processors.py``) and chat template: a
    one-block vision tower on 8-pixel patches (a real one: 14), each 2x2 of them merged into one image token,
    images resized to at most 64x64 pixels (a 48x48 shape: 36 patches, 9 tokens), and a tiny Qwen2 language
    model with multimodal rotary positions (``mrope_section`` halves the 16-wide heads as 16/24/24 halves
    Qwen2-VL's 128-wide ones)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from trainforge.media.processors import Qwen2VLProcessor

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN2_VL_SPECIALS})
    tokenizer.chat_template = QWEN2_VL_TEMPLATE
    patch, merge = 8, 2
    images = Qwen2VLImageProcessorPil(
        patch_size=patch, merge_size=merge, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64
    )
    processor = Qwen2VLProcessor(image_processor=images, tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    ids = dict(zip(QWEN2_VL_SPECIALS, tokenizer.convert_tokens_to_ids(QWEN2_VL_SPECIALS), strict=True))
    text = _text_config(tokenizer, hidden_size, layers, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    vision = {
        "depth": 1,
        "embed_dim": 32,
        "hidden_size": hidden_size,  # the merger's output: the language model's width
        "num_heads": 2,
        "mlp_ratio": 2,
        "patch_size": patch,
        "spatial_merge_size": merge,
        "temporal_patch_size": 2,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    generation = _generation_config(tokenizer)
    return _write(path, Qwen2VLForConditionalGeneration, config, seed, processor, generation)


def _text_config(tokenizer: Any, hidden_size: int, layers: int, **extra: Any) -> dict[str, Any]:
    """The tiny decoder both image+text families put behind their vision tower (``extra``: the family's own
    keys), its vocabulary and special tokens the tokenizer's."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **extra,
    }


def _generation_config(tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=32)


def _write(path: Path, model_class: Any, config: Any, seed: int, *parts: Any) -> Path:
    """A seeded random model of ``config`` and the parts that load beside it (tokenizer, feature extractor or
    processor, generation config), saved as an HF folder."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    for part in parts:
        part.save_pretrained(path)
    return path
