"""The fast path of validation: a whole block of JSON lines decoded and schema-checked by msgspec in C.

Most uploads are mostly valid, so most blocks are accepted here, at close to the speed of parsing alone.
This path only ever accepts: a block it cannot vouch for (a decode or schema error, a blank line, a record
that breaks a rule msgspec cannot express) goes back to the per-line checkers in ``formats.py``, which find
the problem and word the message. The schemas below say exactly what those checkers accept (a test holds
the field names equal), so both paths agree on every record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from trainforge.contracts import DataFormat
from trainforge.data.compiled import scan
from trainforge.data.formats import Problem, _turns
from trainforge.data.reader import Block

_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Weight = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ChatMessage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["system", "user", "assistant"]
    content: _Text
    weight: _Weight | None = None
    name: Any = None


class ChatRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    weight: _Weight | None = None
    id: Any = None
    metadata: Any = None


class PromptCompletionRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    prompt: _Text
    completion: _Text
    id: Any = None
    metadata: Any = None


class TextRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    text: _Text
    id: Any = None
    metadata: Any = None


def _valid_turns(roles: tuple[str, ...]) -> bool:
    problems: list[Problem] = []
    _turns(list(roles), "$.messages", problems)
    return not problems


_TURNS: dict[tuple[str, ...], bool] = {}


def _chat_texts(record: ChatRecord) -> list[str] | None:
    messages = record.messages
    roles = tuple([message.role for message in messages])
    valid = _TURNS.get(roles)
    if valid is None:  # a handful of distinct role sequences in a whole dataset: check each once
        valid = _TURNS[roles] = _valid_turns(roles)
    contents = [message.content for message in messages]
    if not valid or any(map(str.isspace, contents)):
        return None
    return contents


def _prompt_completion_texts(record: PromptCompletionRecord) -> list[str] | None:
    if record.prompt.isspace() or record.completion.isspace():
        return None
    return [record.prompt, record.completion]


def _text_texts(record: TextRecord) -> list[str] | None:
    return None if record.text.isspace() else [record.text]


def _each(texts: Callable[[Any], list[str] | None]) -> Callable[[list[Any]], list[list[str]] | None]:
    def batch(records: list[Any]) -> list[list[str]] | None:
        found = list(map(texts, records))
        return None if None in found else found  # type: ignore[return-value]

    return batch


@dataclass(frozen=True)
class FastFormat:
    decoder: msgspec.json.Decoder[Any]
    #: every record's free texts in ``formats.text_fields`` order, or None when the per-line checker must
    #: look at one of them
    texts: Callable[[list[Any]], list[list[str]] | None]
    #: the JSON paths of that many texts
    paths: Callable[[int], list[str]]

    def fields(self, batch: list[list[str]], index: int) -> list[tuple[str, str]]:
        """(json_path, text) pairs of record ``index``, as ``formats.text_fields`` gives them."""
        return list(zip(self.paths(len(batch[index])), batch[index], strict=True))


FAST_FORMATS: dict[DataFormat, FastFormat] = {
    "chat": FastFormat(
        msgspec.json.Decoder(ChatRecord),
        _each(_chat_texts) if scan is None else scan.chat_texts,
        lambda count: [f"$.messages[{index}].content" for index in range(count)],
    ),
    "prompt_completion": FastFormat(
        msgspec.json.Decoder(PromptCompletionRecord),
        _each(_prompt_completion_texts),
        lambda count: ["$.prompt", "$.completion"],
    ),
    "text": FastFormat(msgspec.json.Decoder(TextRecord), _each(_text_texts), lambda count: ["$.text"]),
}


def decode_block(block: Block, fast: FastFormat) -> list[list[str]] | None:
    """The texts of every record of ``block``, one per line in order; None when a line may be blank (it
    starts with whitespace), is invalid, or needs the per-line checker.

    msgspec reads a stream of values, not strictly one per line; with no blank line, as many values as
    lines means exactly one value on each line, so record ``i`` is line ``i``.
    """
    data = block.data
    if not data or block.indented:
        return None
    try:
        records = fast.decoder.decode_lines(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if len(records) != block.line_count:
        return None
    return fast.texts(records)
