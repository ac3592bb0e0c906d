"""The compiled pass keeps to CPython's stable ABI; where that changed how it reads a str (whitespace-only
message content, decided from UTF-8 bytes with str.isspace for the rest), it still agrees with the twin."""

from __future__ import annotations

import msgspec
import pytest

from trainforge.data.compiled import scan
from trainforge.data.fast import ChatRecord, _chat_texts

CONTENTS = ["\u00a0 ", " \x1c\t\x0b", "a", " \u2003x", "\u3000", " ", "é", "\u0085", "\x1f", "x\u200b"]


@pytest.mark.skipif(scan is None, reason="the compiled pass is not built here")
@pytest.mark.parametrize("content", CONTENTS)
def test_whitespace_only_content_is_judged_as_str_isspace_judges_it(content):
    record = msgspec.convert(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]}, ChatRecord
    )
    assert (scan.chat_texts([record]) is None) == (_chat_texts(record) is None) == content.isspace()
