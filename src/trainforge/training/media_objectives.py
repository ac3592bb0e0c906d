"""Training objectives for the speech and multimodal tiers, batched by the model's own processor.

- ``SpeechToText`` (Whisper): each clip decoded from the channel, resampled to 16 kHz mono, turned into log-mel
  features by the feature extractor; the decoder reads ``<|startoftranscript|><|lang|><|transcribe|>
  <|notimestamps|>`` (``media/generation.speech_prefix``, the prompt transcription decodes after) and the
  transcript, and only the transcript and its end token carry loss. The language most examples named is
  the exported model's default (``stats["language"]``, written by ``save_speech_defaults``).
- ``ImageTextToText`` (Idefics3 / SmolVLM, any ``AutoModelForImageTextToText`` whose processor takes
  ``text`` and ``images``): the conversation rendered by the processor's chat template, images by its image
  processor; only the assistant's turns (each with its end-of-turn token) carry loss.

No packing for either (``training/packing.py`` packs text only): a Whisper batch is one clip per row, its
encoder sees a fixed 30-second window and its decoder the one transcript; an image+text row's image tokens
must stay in the row whose text they were expanded into. Each example is its own row, padded to the
batch's longest. Both follow the ``Objective`` protocol, so the loop, its resume, metrics and checkpoints
are the text models' own. Media are decoded batch by batch (not held in memory) through the same checks
validation ran (``media/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainforge.catalog import CATALOG, FAMILY_LORA_TARGETS, peft_target_modules
from trainforge.media.decode import decode_audio, decode_image
from trainforge.media.generation import UnsupportedLanguage, dominant_language, load_media_model, speech_prefix
from trainforge.media.limits import TARGET_SAMPLE_RATE, MediaLimits
from trainforge.media.models import model_type
from trainforge.media.records import image_parts
from trainforge.media.references import read_media
from trainforge.store import open_store
from trainforge.training.config import TrainConfig
from trainforge.training.tokenize import IGNORE

_LIMITS = MediaLimits()


def load_media_trainable(model_dir: Path, config: TrainConfig) -> tuple[Any, Any]:
    """The processor and the model training starts from (fp32, a LoRA adapter on the catalog's targets)."""
    processor, model = load_media_model(model_dir)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.trains_adapter:
        from peft import LoraConfig, get_peft_model

        # a base outside the catalog (a folder URI) takes its family's targets, by its config's model_type
        entry = CATALOG.get(config.base_model_id)
        targets = entry.lora_targets if entry is not None else FAMILY_LORA_TARGETS[model_type(model_dir)]
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=peft_target_modules(targets),
        )
        model = get_peft_model(model, lora)
    return processor, model


def media_bytes(folder: Path, reference: str, limit: int) -> bytes:
    """A record's medium, resolved as validation resolved it: beside the channel's records."""
    records_uri = (folder / "records.jsonl").resolve().as_uri()
    return read_media(reference, records_uri, open_store(records_uri), limit)


def transcript_ids(tokenizer: Any, text: str) -> list[int]:
    return [*tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


@dataclass(frozen=True)
class SpeechExample:
    folder: Path
    audio: str
    prefix: list[int]
    target: list[int]


@dataclass
class SpeechToText:
    examples: list[SpeechExample]
    processor: Any

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.examples[i] for i in indices]
        clips = [decode_audio(media_bytes(e.folder, e.audio, _LIMITS.max_audio_bytes)).samples for e in chosen]
        features = self.processor.feature_extractor(clips, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="pt")
        rows = [e.prefix + e.target for e in chosen]
        width = max(len(row) for row in rows) - 1
        pad = self.processor.tokenizer.pad_token_id
        inputs = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (example, ids) in enumerate(zip(chosen, rows, strict=True)):
            inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
            mask[row, : len(ids) - 1] = 1
            labels[row, len(example.prefix) - 1 : len(ids) - 1] = torch.tensor(example.target)
        return {
            "input_features": features["input_features"],
            "decoder_input_ids": inputs,
            "decoder_attention_mask": mask,
            "labels": labels,
        }

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["decoder_attention_mask"].sum())

    def loss_sum(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(
            input_features=batch["input_features"],
            decoder_input_ids=batch["decoder_input_ids"],
            decoder_attention_mask=batch["decoder_attention_mask"],
        ).logits
        labelled = batch["labels"] != IGNORE
        return F.cross_entropy(logits[labelled].float(), batch["labels"][labelled], reduction="sum")


def processor_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A multimodal record's messages as chat templates read them: each image part a bare
    ``{"type": "image"}`` (the images travel beside the text), text parts as they are."""
    messages = []
    for message in record["messages"]:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {"type": "image"} if part["type"] in ("image", "image_url") else {"type": "text", "text": part["text"]}
                for part in content
            ]
        else:
            content = [{"type": "text", "text": content}]
        messages.append({"role": message["role"], "content": content})
    return messages


@dataclass(frozen=True)
class VisionExample:
    folder: Path
    text: str
    images: list[str]
    #: (start, end) characters of ``text`` each assistant turn says: from the end of the header its generation
    #: prompt renders to the end of its words; those tokens and the turn's end token after them carry loss
    answers: list[tuple[int, int]]


def _expanded(char: int, replacements: list[dict[str, Any]]) -> int:
    """Where ``char`` of the rendered text lies in the text the processor tokenized, in which each image
    placeholder before it became the image's tokens (its ``text_replacement_offsets``)."""
    before = [r for r in replacements if r["span"][1] <= char]
    return char + before[-1]["new_span"][1] - before[-1]["span"][1] if before else char


def _answer_positions(offsets: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """The tokens (by their ``(start, end)`` character offsets) that overlap the span, then the one token
    that follows it: the template's end of turn (``<|im_end|>``, ``<end_of_utterance>``), which the model
    must learn to say. Padding and other zero-width tokens match nothing."""
    begins, ends = offsets[:, 0], offsets[:, 1]
    said = (begins < end) & (ends > start)
    following = ((begins >= end) & (ends > begins)).nonzero()
    if len(following):
        said[following[0, 0]] = True
    return said


@dataclass
class ImageTextToText:
    examples: list[VisionExample]
    processor: Any

    def __len__(self) -> int:
        return len(self.examples)

    def images(self, example: VisionExample) -> list[Any]:
        return [decode_image(media_bytes(example.folder, ref, _LIMITS.max_image_bytes)) for ref in example.images]

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.examples[i] for i in indices]
        images = [self.images(e) for e in chosen]
        encoded = self.processor(
            text=[e.text for e in chosen],
            images=images if any(images) else None,
            padding=True,
            return_tensors="pt",
            return_offsets_mapping=True,
            return_text_replacement_offsets=True,
        )
        offsets = encoded.pop("offset_mapping")
        replacements = encoded.pop("text_replacement_offsets", None) or [[] for _ in chosen]
        ids = encoded["input_ids"]
        labels = torch.full_like(ids, IGNORE)
        for row, example in enumerate(chosen):
            for start, end in example.answers:
                said = _answer_positions(
                    offsets[row], _expanded(start, replacements[row]), _expanded(end, replacements[row])
                )
                labels[row, said] = ids[row, said]
        return {**encoded, "labels": labels}

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["attention_mask"].sum())

    def loss_sum(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        logits = model(**inputs).logits[:, :-1]
        targets = batch["labels"][:, 1:]
        labelled = targets != IGNORE
        return F.cross_entropy(logits[labelled].float(), targets[labelled], reduction="sum")


def vision_example(processor: Any, folder: Path, record: dict[str, Any]) -> VisionExample:
    """The conversation rendered by the processor's chat template, and where in it each assistant turn's
    words are. Found by characters, not tokens: in context the words tokenize differently than alone
    (SmolVLM renders ``Assistant: A red circle.<end_of_utterance>``, so ``A`` is read with its space), and a
    user turn may end with the same words."""
    messages = processor_messages(record)
    text = str(processor.apply_chat_template(messages, tokenize=False))
    answers = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        header = str(processor.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True))
        said = "".join(part.get("text", "") for part in message["content"]).strip()
        at = text.find(said, len(header))
        if not text.startswith(header) or at < 0 or text[len(header) : at].strip():
            raise ValueError(
                f"{folder}: in the record whose assistant says {said[:40]!r}, the chat template does not render "
                f"message {index + 1} as its generation prompt then its text, so its tokens cannot be labelled"
            )
        answers.append((len(header), at + len(said)))
    return VisionExample(folder, text, [ref for _, ref in image_parts(record)], answers)


def speech_example(
    processor: Any, folder: Path, record: dict[str, Any], positions: int, english_only: bool
) -> SpeechExample:
    """A clip and its decoder tokens, refused when they outgrow the decoder: validation bounds transcripts
    in characters, the decoder holds ``max_target_positions`` tokens (448 in every Whisper), prompt included.
    ``english_only``: the model is an English-only Whisper (``generation.is_english_only``)."""
    try:
        prefix = speech_prefix(processor.tokenizer, record.get("language"), english_only=english_only)
    except UnsupportedLanguage as exc:  # the record that names it
        raise UnsupportedLanguage(f"{folder}: the record of {record['audio']}: {exc}") from exc
    target = transcript_ids(processor.tokenizer, record["text"])
    if len(prefix) + len(target) > positions:
        raise ValueError(
            f"{folder}: the transcript of {record['audio']} is {len(target)} tokens; with the {len(prefix)}-token "
            f"task prompt that exceeds the {positions} positions the model's decoder holds (shorten it or split "
            "the clip)"
        )
    return SpeechExample(folder, record["audio"], prefix, target)


def _examples(
    processor: Any, folder: Path, records: list[dict[str, Any]], fmt: str, model_config: Any, english_only: bool
) -> list[Any]:
    if fmt == "speech":
        positions = model_config.max_target_positions
        return [speech_example(processor, folder, r, positions, english_only) for r in records]
    return [vision_example(processor, folder, r) for r in records]


def build_media_objectives(
    processor: Any,
    train_dir: Path,
    validation_dir: Path | None,
    config: TrainConfig,
    model_config: Any,
    english_only: bool = False,
) -> Any:
    """The media twin of ``data_setup.build_objectives``: the same split (``data_setup.split_channels``), each example
    checked against ``model_config`` (the model's HF config: what its decoder holds). ``english_only``: the
    model is an English-only Whisper (``generation.is_english_only`` of its generation config)."""
    from trainforge.training.data_setup import Objectives, split_channels

    fmt, records, held_out, held_out_dir = split_channels(train_dir, validation_dir, config)
    if fmt not in ("speech", "multimodal"):
        raise ValueError(f"a speech or image+text model trains on speech or multimodal records, the data is {fmt}")
    if config.replay_fraction > 0:  # the spec refuses it for these formats when it names them (``spec.replays``)
        raise ValueError(f"data.replay_fraction: a {fmt} run replays no general text; set it to 0")
    kind: Any = SpeechToText if fmt == "speech" else ImageTextToText
    train = kind(_examples(processor, train_dir, records, fmt, model_config, english_only), processor)
    validation = (
        kind(_examples(processor, held_out_dir, held_out, fmt, model_config, english_only), processor)
        if held_out
        else None
    )
    stats: dict[str, Any] = {"examples": len(records), "sequences": len(records), "validation_examples": len(held_out)}
    if fmt == "speech":  # the prompt most examples trained with: the model's default (``save_speech_defaults``)
        stats["language"] = dominant_language(processor.tokenizer, [record.get("language") for record in records])
    return Objectives(train, validation, fmt, stats)  # type: ignore[arg-type]
