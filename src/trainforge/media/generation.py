"""Greedy answers of a speech or image+text model: one function each, shared by evaluation (its WER, exact
match and parity) and the server (``/v1/audio/transcriptions``, image chat), so the endpoint answers as
the evaluated model did. Imports torch: not part of the Lambdas' ``trainforge.media``."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainforge.errors import TrainingFailed
from trainforge.media.limits import TARGET_SAMPLE_RATE
from trainforge.media.models import media_modality


def load_media_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(processor, model) of a speech or image+text HF folder, as every reader of one loads it."""
    from transformers import AutoModelForImageTextToText, AutoModelForSpeechSeq2Seq

    from trainforge.media.processors import load_processor

    loader: Any = AutoModelForSpeechSeq2Seq if media_modality(model_dir) == "speech" else AutoModelForImageTextToText
    return load_processor(model_dir), loader.from_pretrained(model_dir, dtype=dtype)


#: the one task a TrainForge speech model is tuned for and asked (Whisper's other, ``translate``, is not offered)
SPEECH_TASK = "transcribe"


def language_token(tokenizer: Any, language: str) -> int | None:
    """The id of Whisper's ``<|language|>`` token, None when the tokenizer has no such token."""
    found = tokenizer.convert_tokens_to_ids(f"<|{language}|>")
    return None if found is None or found == tokenizer.unk_token_id else int(found)


def is_english_only(generation_config: Any) -> bool:
    """Whether the model is an English-only Whisper (``*.en``), whose generation config says
    ``is_multilingual: false``: its prompt has no language or task token, and Whisper's ``generate`` refuses
    both for it. OpenAI's tokenizer for those models has neither (``get_tokenizer(multilingual=False)``,
    https://github.com/openai/whisper/blob/main/whisper/tokenizer.py); their HF generation config forces
    only ``<|notimestamps|>`` (https://huggingface.co/openai/whisper-tiny.en/blob/main/generation_config.json)."""
    return getattr(generation_config, "is_multilingual", True) is False


class UnsupportedLanguage(TrainingFailed, ValueError):
    """A language the speech model cannot be prompted in: a training job's own reason (its failure file names
    it, not "unexpected"), a transcription request's 400."""


def speech_prefix(tokenizer: Any, language: str | None, english_only: bool = False) -> list[int]:
    """Whisper's decoder prompt: start, language (when the tokenizer knows it), task, no timestamps; start
    and no timestamps alone for an English-only model (``is_english_only``). The one prompt training labels
    after and transcription decodes after."""
    names = ("startoftranscript", SPEECH_TASK, "notimestamps")
    start, task, no_timestamps = (tokenizer.convert_tokens_to_ids(f"<|{name}|>") for name in names)
    if english_only:
        if language and language_code(language) != "en":  # its prompt cannot name a language: refuse, not ignore
            raise UnsupportedLanguage(
                f"language {language!r}: the model is an English-only Whisper (a *.en checkpoint, no language "
                "tokens): it transcribes English only; use a multilingual Whisper for other languages"
            )
        language, task = None, None
    ids = [start, language_token(tokenizer, language) if language else None, task, no_timestamps]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def dominant_language(tokenizer: Any, languages: Iterable[str | None]) -> str | None:
    """The language most training prompts named (None: most named none, or one the tokenizer has no token
    for, which ``speech_prefix`` leaves out); the first seen wins a tie."""
    counts = Counter(code if code and language_token(tokenizer, code) is not None else None for code in languages)
    return counts.most_common(1)[0][0] if counts else None


def default_language(model: Any) -> str | None:
    """The language a request that names none is transcribed in: the model's generation config's
    ``language`` (training writes its data's dominant language there, ``save_speech_defaults``), as a code;
    Whisper's generate also accepts a token or a name there (``<|ja|>``, ``japanese``)."""
    value = getattr(model.generation_config, "language", None)
    return language_code(value) if isinstance(value, str) and value else None


def language_code(language: str) -> str:
    """``ja`` for ``ja``, ``<|ja|>`` or ``japanese``: the forms Whisper's generate accepts, as a code."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    value = language.lower().strip("<|>")
    return TO_LANGUAGE_CODE.get(value, value)


def force_prompt(config: Any, prefix: list[int]) -> None:
    """Make Whisper's ``generate`` start from exactly ``prefix`` (a ``speech_prefix``): ``language`` and
    ``task`` unset, the prompt after the start token as ``forced_decoder_ids``. With ``language`` unset and a
    ``lang_to_id`` map, ``generate`` runs a language-detection pass and puts the detected token in; with
    ``task`` set it ignores ``forced_decoder_ids`` (and an English-only model refuses both) (``WhisperGenerationMixin._retrieve_init_tokens``,
    https://github.com/huggingface/transformers/blob/main/src/transformers/models/whisper/generation_whisper.py).
    A prompt with a token at position 1 skips the detection."""
    config.language = config.task = None
    config.forced_decoder_ids = [[position, token] for position, token in enumerate(prefix[1:], 1)]


def save_speech_defaults(model_dir: Path, tokenizer: Any, language: str | None) -> None:
    """Write into ``model_dir``'s generation_config.json the prompt the model was tuned with, where Whisper's
    ``generate`` reads its defaults: ``language`` and ``task``, with the ``lang_to_id`` / ``task_to_id`` maps
    it looks them up in, built from the tokenizer when the base's config has none
    (https://huggingface.co/docs/transformers/model_doc/whisper#transformers.WhisperForConditionalGeneration.generate);
    without a language, the prompt itself (``force_prompt``: no language token, no detection pass). So
    ``transcribe`` without a language, and ``generate`` or the ASR pipeline outside TrainForge, decode after
    the prompt the model learnt."""
    from transformers import GenerationConfig
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TASK_IDS

    config: Any = GenerationConfig.from_pretrained(model_dir)  # Whisper's keys are not declared attributes
    if is_english_only(config):  # no language or task to name: no maps to look them up in
        force_prompt(config, speech_prefix(tokenizer, None, english_only=True))
        config.save_pretrained(model_dir)
        return
    if not getattr(config, "lang_to_id", None):
        known = {code: language_token(tokenizer, code) for code in LANGUAGES}
        config.lang_to_id = {f"<|{code}|>": token for code, token in known.items() if token is not None}
    if not getattr(config, "task_to_id", None):
        tasks = {task: tokenizer.convert_tokens_to_ids(f"<|{task}|>") for task in TASK_IDS}
        config.task_to_id = {task: t for task, t in tasks.items() if t is not None and t != tokenizer.unk_token_id}
    if getattr(config, "no_timestamps_token_id", None) is None:
        config.no_timestamps_token_id = speech_prefix(tokenizer, None)[-1]
    if language is None:
        force_prompt(config, speech_prefix(tokenizer, None))
    else:
        config.language = language
        config.task = SPEECH_TASK if SPEECH_TASK in config.task_to_id else None
        config.forced_decoder_ids = None  # ignored once language or task is set: not left to mislead
    config.save_pretrained(model_dir)


def transcribe(
    model: Any, processor: Any, samples: np.ndarray, language: str | None = None, max_new_tokens: int = 64
) -> str:
    """The transcript of 16 kHz mono ``samples``, decoded greedily after the task prompt in ``language``,
    or the model's ``default_language`` when the request names none; the prompt is forced
    (``force_prompt``), so ``generate`` runs no language-detection pass."""
    device = next(model.parameters()).device
    features = processor.feature_extractor(samples, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="pt")
    english_only = is_english_only(model.generation_config)
    prefix = speech_prefix(processor.tokenizer, language or default_language(model), english_only=english_only)
    room = getattr(model.config, "max_target_positions", max_new_tokens + len(prefix)) - len(prefix)
    config = copy.deepcopy(model.generation_config)
    force_prompt(config, prefix)
    with torch.no_grad():
        output = model.generate(
            input_features=features["input_features"].to(device, next(model.parameters()).dtype),
            generation_config=config,
            max_new_tokens=min(max_new_tokens, room),  # the decoder holds max_target_positions in all
            do_sample=False,
        )
    ids = output[0].tolist()
    if ids[: len(prefix)] == prefix:  # some versions return the prompt, Whisper's own generate strips it
        ids = ids[len(prefix) :]
    return str(processor.tokenizer.decode(ids, skip_special_tokens=True)).strip()


def answer(
    model: Any, processor: Any, messages: list[dict[str, Any]], images: list[Any], max_new_tokens: int = 64
) -> str:
    """The assistant's greedy reply to ``messages`` (content parts, images as bare ``{"type": "image"}``
    parts) with ``images`` (Pillow images, in the order of those parts)."""
    device = next(model.parameters()).device
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[images] if images else None, return_tensors="pt").to(device)
    tokenizer = processor.tokenizer
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()
