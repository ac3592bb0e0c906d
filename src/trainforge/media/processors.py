"""The processor of a speech or image+text HF folder, as training, evaluation and the server load it.

transformers' Qwen2-VL and Qwen2.5-VL processors hold a video processor beside the image processor and the
tokenizer, and cannot be built without torchvision: ``ProcessorMixin`` checks each part's class, and the
video classes exist only where torchvision is installed
(https://github.com/huggingface/transformers/issues/48558). TrainForge's records carry images, never video,
and its environments install no torchvision, so these two families load as the subclasses below: the
family's own image processor, tokenizer, chat template and ``__call__`` (each ``<|image_pad|>`` expanded to
``image_grid_thw``'s merged patches), without the video processor. They keep their family's class names,
so a tuned model's folder names ``Qwen2VLProcessor`` as its base's did, and ``AutoProcessor`` loads it
wherever torchvision is installed. Imports transformers: read only by ``media/generation.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoProcessor, ProcessorMixin
from transformers.models.qwen2_5_vl import processing_qwen2_5_vl
from transformers.models.qwen2_vl import processing_qwen2_vl

from trainforge.media.models import model_type


class _WithoutVideo:
    """The family's ``__init__`` without its ``video_processor``: the token attributes it sets (as
    transformers' ``Qwen2VLProcessor.__init__`` does), then ``ProcessorMixin``'s with the two parts. The
    parts a processor loads and saves are read from this signature (``ProcessorMixin.get_attributes``), so
    ``from_pretrained`` loads no video processor and ignores a folder's video settings."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any):
        processor: Any = self
        processor.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        processor.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        processor.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            processor.image_token
        )
        processor.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
            processor.video_token
        )
        ProcessorMixin.__init__(processor, image_processor, tokenizer, chat_template=chat_template, **kwargs)


class Qwen2VLProcessor(_WithoutVideo, processing_qwen2_vl.Qwen2VLProcessor):
    """Qwen2-VL's processor for images (and text)."""


class Qwen2_5_VLProcessor(_WithoutVideo, processing_qwen2_5_vl.Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor for images (and text)."""


#: config.json ``model_type`` -> the processor its folder loads with (any other: ``AutoProcessor``)
IMAGE_ONLY_PROCESSORS: dict[str, Any] = {"qwen2_vl": Qwen2VLProcessor, "qwen2_5_vl": Qwen2_5_VLProcessor}


def load_processor(model_dir: Path) -> Any:
    """The processor saved in a media model's folder."""
    loader = IMAGE_ONLY_PROCESSORS.get(model_type(model_dir), AutoProcessor)
    return loader.from_pretrained(model_dir)
