"""Turning validated records into token ids and loss masks.

Chat data is rendered with the model's own chat template, and only the tokens the assistant wrote
(including its end-of-turn token, so the model learns to stop) carry loss. The spans come from rendering
each prefix of the conversation: whatever the template adds for message i lies between the rendering of
messages[:i] (with the generation prompt) and messages[:i+1]. That works for any template that renders
prefixes as prefixes, which all common chat templates do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainforge.contracts import DataFormat

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]


def as_messages(record: dict[str, Any], fmt: DataFormat) -> list[dict[str, str]]:
    """Chat and Bedrock-conversation records as plain role/content messages."""
    if fmt == "chat":
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    if fmt == "bedrock_conversation":
        messages = []
        system = "\n".join(block["text"] for block in record.get("system") or [])
        if system:
            messages.append({"role": "system", "content": system})
        for message in record["messages"]:
            messages.append({"role": message["role"], "content": "".join(b["text"] for b in message["content"])})
        return messages
    raise ValueError(f"{fmt} records are not conversations")


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt))


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], weights: list[float] | None = None) -> Example:
    text = _render(tokenizer, messages, False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or (weights is not None and weights[index] == 0):
            continue
        start = len(_render(tokenizer, messages[:index], True))
        end = len(_render(tokenizer, messages[: index + 1], False))
        spans.append((start, end))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoding["input_ids"]
    labels = [IGNORE] * len(ids)
    for position, (char_start, _) in enumerate(encoding["offset_mapping"]):
        if any(start <= char_start < end for start, end in spans):
            labels[position] = ids[position]
    return Example(ids, labels)


def encode_prompt_completion(tokenizer: Any, prompt: str, completion: str) -> Example:
    """Loss on the completion (and the end-of-sequence token) only."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids)


def encode_text(tokenizer: Any, text: str) -> Example:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(ids, list(ids))


def encode_record(tokenizer: Any, record: dict[str, Any], fmt: DataFormat) -> Example:
    """One training example from one validated record of a supervised or pretraining format."""
    if fmt == "chat":
        messages = as_messages(record, fmt)
        weights = [float(m.get("weight", 1)) for m in record["messages"]]
        if float(record.get("weight", 1)) == 0:
            weights = [0.0] * len(weights)
        return encode_chat(tokenizer, messages, weights)
    if fmt == "bedrock_conversation":
        return encode_chat(tokenizer, as_messages(record, fmt))
    if fmt == "prompt_completion":
        return encode_prompt_completion(tokenizer, record["prompt"], record["completion"])
    if fmt == "text":
        return encode_text(tokenizer, record["text"])
    raise ValueError(f"{fmt} records are encoded by the DPO recipe, not here")


def preference_prompt(tokenizer: Any, record: dict[str, Any]) -> str:
    """The text before chosen/rejected, rendered with the chat template when the model has one."""
    messages = record.get("messages") or [{"role": "user", "content": record["prompt"]}]
    if getattr(tokenizer, "chat_template", None):
        return _render(tokenizer, messages, True)
    return "\n".join(m["content"] for m in messages) + "\n"
