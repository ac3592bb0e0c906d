"""The two media record formats, checked for structure like the text formats (``data/formats.py`` holds
their checkers in its table; the media themselves are checked by ``checks.py``).

    speech:      {"audio": "clips/0001.wav", "text": "the transcript", "language": "en"}
    multimodal:  {"messages": [{"role": "user", "content": [{"type": "image", "image": "shapes/1.png"},
                                                            {"type": "text", "text": "What shape?"}]},
                               {"role": "assistant", "content": "A red circle."}]}

A multimodal message's ``content`` is a string or a list of parts: ``{"type": "text", "text": ...}``,
``{"type": "image", "image": KEY_OR_URI}`` or OpenAI's ``image_url`` part, whose ``image_url.url`` is a
``data:image/png;base64,...`` URI. Images go in user (and system) turns; the assistant answers in text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Problem = tuple[str, str, str]
_SPEECH_KEYS = {"audio", "text", "language", "id", "metadata"}
_MULTIMODAL_KEYS = {"messages", "id", "metadata"}
_ROLES = ("system", "user", "assistant")


def _problem_text(value: Any, path: str) -> list[Problem]:
    if not isinstance(value, str):
        return [(path, "wrong_type", f"must be a string, got {type(value).__name__}")]
    if not value.strip():
        return [(path, "empty_content", "must not be empty or only whitespace")]
    return []


def check_speech(record: dict[str, Any]) -> list[Problem]:
    problems = [
        (f"$.{key}", "unknown_field", f"unknown field '{key}'; allowed: {', '.join(sorted(_SPEECH_KEYS))}")
        for key in record
        if key not in _SPEECH_KEYS
    ]
    for key in ("audio", "text"):
        if key not in record:
            problems.append((f"$.{key}", "missing_field", f"missing required field '{key}'"))
        else:
            problems += _problem_text(record[key], f"$.{key}")
    language = record.get("language")
    if language is not None and not (isinstance(language, str) and 2 <= len(language) <= 3 and language.isalpha()):
        problems.append(
            ("$.language", "invalid_language", f"must be an ISO 639-1 code such as 'en' or 'ja', got {language!r}")
        )
    return problems


def image_reference(part: dict[str, Any]) -> Any:
    """The key, URI or data URI an image part names (``image`` or OpenAI's ``image_url.url``)."""
    if part.get("type") == "image_url":
        url = part.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    return part.get("image")


def _parts(content: list[Any], path: str, role: str) -> list[Problem]:
    problems: list[Problem] = []
    if not content:
        return [(path, "empty_content", "a list of parts must hold at least one part")]
    for index, part in enumerate(content):
        here = f"{path}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            problems += _problem_text(part.get("text"), f"{here}.text")
        elif kind in ("image", "image_url"):
            if role == "assistant":
                problems.append(
                    (here, "image_in_assistant_turn", "the assistant answers in text: move the image to a user turn")
                )
            elif not isinstance(image_reference(part), str):
                field = "image_url.url" if kind == "image_url" else "image"
                problems.append(
                    (f"{here}.{field}", "missing_field", "an image part names its image: a key, URI or data URI")
                )
        else:
            problems.append(
                (f"{here}.type", "invalid_part", f"a part's type is text, image or image_url, got {kind!r}")
            )
    return problems


def check_multimodal(record: dict[str, Any]) -> list[Problem]:
    problems = [
        (f"$.{key}", "unknown_field", f"unknown field '{key}'; allowed: {', '.join(sorted(_MULTIMODAL_KEYS))}")
        for key in record
        if key not in _MULTIMODAL_KEYS
    ]
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, ("$.messages", "empty_messages", "must hold at least one user and one assistant message")]
    for index, message in enumerate(messages):
        here = f"$.messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            problems.append((f"{here}.role", "invalid_role", f"role must be one of {', '.join(_ROLES)}"))
            continue
        content = message.get("content")
        if isinstance(content, list):
            problems += _parts(content, f"{here}.content", message["role"])
        else:
            problems += _problem_text(content, f"{here}.content")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") != "assistant":
        problems.append(
            (
                f"$.messages[{len(messages) - 1}]",
                "last_turn_not_assistant",
                "the last message must be from the assistant (it is what the model learns)",
            )
        )
    return problems


def content_text(content: Any) -> str:
    """A message's text: its string, or its text parts joined (a list of parts is valid content)."""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
    )


def image_parts(record: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(json_path, reference) of every image part of a multimodal or chat record, in order."""
    for index, message in enumerate(record.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part_index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("image", "image_url"):
                field = ".image_url.url" if part["type"] == "image_url" else ".image"
                yield f"$.messages[{index}].content[{part_index}]{field}", image_reference(part)


def has_parts(record: dict[str, Any]) -> bool:
    """Whether a record's messages use content parts with a ``type`` (multimodal, not Bedrock's blocks)."""
    messages = record.get("messages")
    return isinstance(messages, list) and any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and "type" in p for p in m["content"])
        for m in messages
    )
