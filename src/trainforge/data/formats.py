"""The training-data formats: how each record must look, and how to read its text (the speech and
multimodal records' own checks live in ``media/records.py``; their media are checked by ``media/checks.py``).

Each checker returns ``(json_path, code, message)`` triples; an empty list means the record is valid.
Checkers are plain Python on purpose: they run once per record on multi-GB files, and a hand-written check
is several times faster than a generic schema validator while giving messages that say what to change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from trainforge.contracts import DataFormat
from trainforge.media.records import check_multimodal, check_speech, has_parts, image_parts

Problem = tuple[str, str, str]
BEDROCK_SCHEMA = "bedrock-conversation-2024"

_CHAT_KEYS = {"messages", "weight", "id", "metadata"}
_MESSAGE_KEYS = {"role", "content", "weight", "name"}
_PLAIN_MESSAGE_KEYS = {"role", "content", "name"}
_PC_KEYS = {"prompt", "completion", "id", "metadata"}
_TEXT_KEYS = {"text", "id", "metadata"}
_PREF_KEYS = {"prompt", "messages", "chosen", "rejected", "id", "metadata"}
_BEDROCK_KEYS = {"schemaVersion", "system", "messages", "id", "metadata"}


def _unknown(record: dict[str, Any], allowed: set[str], prefix: str = "$") -> list[Problem]:
    if record.keys() <= allowed:
        return []
    return [
        (f"{prefix}.{key}", "unknown_field", f"unknown field '{key}'; allowed: {', '.join(sorted(allowed))}")
        for key in record
        if key not in allowed
    ]


def _text(value: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, str):
        problems.append((path, "wrong_type", f"must be a string, got {type(value).__name__}"))
    elif not value or value.isspace():
        problems.append((path, "empty_content", "must not be empty or only whitespace"))


def _weight(value: Any, path: str, problems: list[Problem]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        problems.append((path, "invalid_weight", "weight must be a number between 0 and 1"))


def _turns(roles: list[str], path: str, problems: list[Problem]) -> None:
    """System first (optional), then user/assistant alternating, ending with assistant."""
    expected = "user"
    for index, role in enumerate(roles):
        here = f"{path}[{index}].role"
        if role == "system":
            if index != 0:
                problems.append((here, "misplaced_system", "a system message may only be the first message"))
            continue
        if role != expected:
            problems.append(
                (
                    here,
                    "roles_not_alternating",
                    f"expected '{expected}' here, got '{role}': turns alternate user/assistant",
                )
            )
            return
        expected = "assistant" if role == "user" else "user"
    if roles and roles[-1] != "assistant":
        problems.append(
            (
                f"{path}[{len(roles) - 1}]",
                "last_turn_not_assistant",
                "the last message must be from the assistant (it is what the model learns)",
            )
        )


def _messages(
    value: Any, path: str, problems: list[Problem], *, roles: tuple[str, ...], end_assistant: bool = True
) -> None:
    if not isinstance(value, list):
        problems.append((path, "wrong_type", f"must be a list of messages, got {type(value).__name__}"))
        return
    if not value:
        problems.append((path, "empty_messages", "must hold at least one user and one assistant message"))
        return
    seen: list[str] = []
    for index, message in enumerate(value):
        if type(message) is not dict:
            problems.append(
                (f"{path}[{index}]", "wrong_type", f"a message must be an object, got {type(message).__name__}")
            )
            return
        role = message.get("role")
        if role not in roles:
            problems.append(
                (f"{path}[{index}].role", "invalid_role", f"role must be one of {', '.join(roles)}, got {role!r}")
            )
            return
        seen.append(role)
        content = message.get("content")
        # fast path first: this runs for every message of multi-GB files
        if type(content) is str and content and not content.isspace() and message.keys() <= _PLAIN_MESSAGE_KEYS:
            continue
        here = f"{path}[{index}]"
        problems.extend(_unknown(message, _MESSAGE_KEYS, here))
        images = [where for where, _ in image_parts({"messages": [message]})] if isinstance(content, list) else []
        if "content" not in message:
            problems.append((f"{here}.content", "missing_field", "missing required field 'content'"))
        elif images:
            problems.append(
                (
                    f"{here}.content[{images[0].split('.content[')[1].split(']')[0]}]",
                    "image_in_text_tier",
                    "an image part needs data.format multimodal and a multimodal base model (base_model: "
                    "multimodal); chat data is text only",
                )
            )
        else:
            _text(content, f"{here}.content", problems)
        if "weight" in message:
            _weight(message["weight"], f"{here}.weight", problems)
    if end_assistant:
        _turns(seen, path, problems)


def _require(record: dict[str, Any], keys: Iterable[str], problems: list[Problem]) -> bool:
    missing = [key for key in keys if key not in record]
    for key in missing:
        problems.append((f"$.{key}", "missing_field", f"missing required field '{key}'"))
    return not missing


def check_chat(record: dict[str, Any]) -> list[Problem]:
    problems = _unknown(record, _CHAT_KEYS)
    if _require(record, ("messages",), problems):
        _messages(record["messages"], "$.messages", problems, roles=("system", "user", "assistant"))
    if "weight" in record:
        _weight(record["weight"], "$.weight", problems)
    return problems


def check_prompt_completion(record: dict[str, Any]) -> list[Problem]:
    problems = _unknown(record, _PC_KEYS)
    if _require(record, ("prompt", "completion"), problems):
        _text(record["prompt"], "$.prompt", problems)
        _text(record["completion"], "$.completion", problems)
    return problems


def check_text(record: dict[str, Any]) -> list[Problem]:
    problems = _unknown(record, _TEXT_KEYS)
    if _require(record, ("text",), problems):
        _text(record["text"], "$.text", problems)
    return problems


def check_preference(record: dict[str, Any]) -> list[Problem]:
    problems = _unknown(record, _PREF_KEYS)
    if "prompt" not in record and "messages" not in record:
        problems.append(("$.prompt", "missing_field", "missing required field 'prompt' (or 'messages')"))
    elif "prompt" in record:
        _text(record["prompt"], "$.prompt", problems)
    else:
        _messages(
            record["messages"], "$.messages", problems, roles=("system", "user", "assistant"), end_assistant=False
        )
        messages = record["messages"]
        if (
            isinstance(messages, list)
            and messages
            and isinstance(messages[-1], dict)
            and messages[-1].get("role") != "user"
        ):
            problems.append(
                (
                    f"$.messages[{len(messages) - 1}].role",
                    "last_turn_not_user",
                    "the conversation before chosen/rejected must end with a user message",
                )
            )
    if _require(record, ("chosen", "rejected"), problems):
        _text(record["chosen"], "$.chosen", problems)
        _text(record["rejected"], "$.rejected", problems)
        if record["chosen"] == record["rejected"]:
            problems.append(
                ("$.rejected", "identical_pair", "rejected is identical to chosen: the pair teaches nothing")
            )
    return problems


def check_bedrock(record: dict[str, Any]) -> list[Problem]:
    problems = _unknown(record, _BEDROCK_KEYS)
    if record.get("schemaVersion") != BEDROCK_SCHEMA:
        problems.append(
            (
                "$.schemaVersion",
                "wrong_schema_version",
                f"must be '{BEDROCK_SCHEMA}', got {record.get('schemaVersion')!r}",
            )
        )
    system = record.get("system", [])
    if not isinstance(system, list):
        problems.append(("$.system", "wrong_type", 'must be a list of {"text": ...} blocks'))
    else:
        for index, block in enumerate(system):
            if not isinstance(block, dict) or "text" not in block:
                problems.append((f"$.system[{index}]", "missing_field", "each system block needs a 'text' field"))
            else:
                _text(block["text"], f"$.system[{index}].text", problems)
    if not _require(record, ("messages",), problems):
        return problems
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        problems.append(("$.messages", "empty_messages", "must be a non-empty list of messages"))
        return problems
    roles: list[str] = []
    for index, message in enumerate(messages):
        here = f"$.messages[{index}]"
        if not isinstance(message, dict):
            problems.append((here, "wrong_type", "a message must be an object"))
            return problems
        problems.extend(_unknown(message, {"role", "content"}, here))
        role = message.get("role")
        if role not in ("user", "assistant"):
            problems.append((f"{here}.role", "invalid_role", f"role must be user or assistant, got {role!r}"))
            return problems
        roles.append(role)
        content = message.get("content")
        if not isinstance(content, list) or not content:
            problems.append(
                (f"{here}.content", "wrong_type", 'content must be a non-empty list of {"text": ...} blocks')
            )
            continue
        for block_index, block in enumerate(content):
            block_path = f"{here}.content[{block_index}]"
            if not isinstance(block, dict) or "text" not in block:
                problems.append((block_path, "missing_field", "each content block needs a 'text' field"))
            else:
                _text(block["text"], f"{block_path}.text", problems)
    _turns(roles, "$.messages", problems)
    return problems


CHECKERS: dict[DataFormat, Callable[[dict[str, Any]], list[Problem]]] = {
    "chat": check_chat,
    "prompt_completion": check_prompt_completion,
    "bedrock_conversation": check_bedrock,
    "text": check_text,
    "preference": check_preference,
    "speech": check_speech,
    "multimodal": check_multimodal,
}


def guess_format(record: Any) -> DataFormat | None:
    """The format a single record's keys suggest, or None."""
    if not isinstance(record, dict):
        return None
    if "chosen" in record or "rejected" in record:
        return "preference"
    if "schemaVersion" in record:
        return "bedrock_conversation"
    if "audio" in record:
        return "speech"
    if has_parts(record):
        return "multimodal"
    if "messages" in record:
        first = record["messages"][0] if isinstance(record["messages"], list) and record["messages"] else None
        if isinstance(first, dict) and isinstance(first.get("content"), list):
            return "bedrock_conversation"
        return "chat"
    if "prompt" in record or "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    return None


def detect_format(records: Iterable[Any]) -> tuple[DataFormat | None, str]:
    """Majority vote over sample records; returns the format and a sentence saying why."""
    votes = Counter(fmt for fmt in map(guess_format, records) if fmt is not None)
    if not votes:
        return None, "no record looked like any supported format"
    fmt, count = votes.most_common(1)[0]
    total = sum(votes.values())
    return fmt, f"format: auto chose {fmt} ({count} of the first {total} recognisable records)"


def text_fields(record: dict[str, Any], fmt: DataFormat) -> Iterator[tuple[str, str]]:
    """(json_path, text) for every free-text field: what PII scanning, redaction and token counts see."""
    if fmt == "chat":
        for index, message in enumerate(record["messages"]):
            yield f"$.messages[{index}].content", message["content"]
    elif fmt == "preference":
        messages = record.get("messages")
        if isinstance(messages, list):
            for index, message in enumerate(messages):
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    yield f"$.messages[{index}].content", message["content"]
        for key in ("prompt", "chosen", "rejected"):
            if isinstance(record.get(key), str):
                yield f"$.{key}", record[key]
    elif fmt == "prompt_completion":
        for key in ("prompt", "completion"):
            if isinstance(record.get(key), str):
                yield f"$.{key}", record[key]
    elif fmt in ("text", "speech"):
        if isinstance(record.get("text"), str):
            yield "$.text", record["text"]
    elif fmt == "multimodal":
        for index, message in enumerate(record["messages"]):
            content = message["content"]
            if isinstance(content, str):
                yield f"$.messages[{index}].content", content
                continue
            for part_index, part in enumerate(content):
                if part.get("type") == "text":
                    yield f"$.messages[{index}].content[{part_index}].text", part["text"]
    elif fmt == "bedrock_conversation":
        for index, block in enumerate(record.get("system") or []):
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                yield f"$.system[{index}].text", block["text"]
        for index, message in enumerate(record.get("messages") or []):
            for block_index, block in enumerate(message.get("content") or [] if isinstance(message, dict) else []):
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    yield f"$.messages[{index}].content[{block_index}].text", block["text"]


def texts(record: dict[str, Any], fmt: DataFormat) -> list[str]:
    """The free-text values alone, in :func:`text_fields` order; the per-record fast path."""
    if fmt == "chat":
        return [message["content"] for message in record["messages"]]
    # the media's keys too: one sentence read by many speakers, one question about many pictures, is many
    # examples, not duplicates (the fingerprints behind dedup and the split read these)
    if fmt == "speech":
        return [record["text"], record["audio"]]
    if fmt == "multimodal":
        return [text for _, text in text_fields(record, fmt)] + [str(ref) for _, ref in image_parts(record)]
    return [text for _, text in text_fields(record, fmt)]


def set_field(record: dict[str, Any], path: str, value: str) -> None:
    """Assign ``value`` at a JSON path produced by :func:`text_fields` (used by redaction)."""
    target: Any = record
    parts = path[2:].replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
