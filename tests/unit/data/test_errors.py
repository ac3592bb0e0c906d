"""Every error code of every format: the report names the file, the 1-based line and the JSON path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import chat
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.local.file_store import FileStore
from trainforge.spec import DataLimits

VALID = {
    "chat": chat(),
    "prompt_completion": {"prompt": "2+2=", "completion": "4"},
    "text": {"text": "Plain text for continued pretraining."},
    "preference": {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."},
    "bedrock_conversation": {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You are helpful."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello"}]},
        ],
    },
}

U, A, S = "user", "assistant", "system"


def msgs(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in pairs]}


# (format, bad record on line 2, expected code, expected field)
CASES: list[tuple[str, Any, str, str]] = [
    ("chat", {"mesages": []}, "unknown_field", "$.mesages"),
    ("chat", {"weight": 1}, "missing_field", "$.messages"),
    ("chat", {"messages": "hi"}, "wrong_type", "$.messages"),
    ("chat", {"messages": []}, "empty_messages", "$.messages"),
    ("chat", {"messages": ["hi"]}, "wrong_type", "$.messages[0]"),
    ("chat", msgs((U, "a"), ("bot", "b")), "invalid_role", "$.messages[1].role"),
    ("chat", {"messages": [{"role": U, "content": "a"}, {"role": A}]}, "missing_field", "$.messages[1].content"),
    ("chat", msgs((U, "a"), (A, "   ")), "empty_content", "$.messages[1].content"),
    ("chat", msgs((U, "a"), (A, 7)), "wrong_type", "$.messages[1].content"),
    ("chat", msgs((U, "a"), (U, "b")), "roles_not_alternating", "$.messages[1].role"),
    ("chat", msgs((U, "a"), (A, "b"), (S, "c")), "misplaced_system", "$.messages[2].role"),
    ("chat", msgs((S, "s"), (U, "a")), "last_turn_not_assistant", "$.messages[1]"),
    ("chat", {**chat(), "weight": 3}, "invalid_weight", "$.weight"),
    (
        "chat",
        {"messages": [{"role": U, "content": "a"}, {"role": A, "content": "b", "weight": "x"}]},
        "invalid_weight",
        "$.messages[1].weight",
    ),
    (
        "chat",
        {"messages": [{"role": U, "content": "a", "tone": 1}, {"role": A, "content": "b"}]},
        "unknown_field",
        "$.messages[0].tone",
    ),
    ("prompt_completion", {"prompt": "a"}, "missing_field", "$.completion"),
    ("prompt_completion", {"prompt": "", "completion": "b"}, "empty_content", "$.prompt"),
    ("prompt_completion", {"prompt": ["a"], "completion": "b"}, "wrong_type", "$.prompt"),
    ("text", {"text": None}, "wrong_type", "$.text"),
    ("text", {"body": "x"}, "unknown_field", "$.body"),
    ("preference", {"prompt": "a", "chosen": "b"}, "missing_field", "$.rejected"),
    ("preference", {"prompt": "a", "chosen": "b", "rejected": "b"}, "identical_pair", "$.rejected"),
    ("preference", {"chosen": "b", "rejected": "c"}, "missing_field", "$.prompt"),
    (
        "preference",
        {**msgs((U, "a"), (A, "b")), "chosen": "x", "rejected": "y"},
        "last_turn_not_user",
        "$.messages[1].role",
    ),
    (
        "bedrock_conversation",
        {**VALID["bedrock_conversation"], "schemaVersion": "v1"},
        "wrong_schema_version",
        "$.schemaVersion",
    ),
    (
        "bedrock_conversation",
        {"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "user", "content": "Hi"}]},
        "wrong_type",
        "$.messages[0].content",
    ),
    (
        "bedrock_conversation",
        {
            "schemaVersion": "bedrock-conversation-2024",
            "messages": [
                {"role": "user", "content": [{"txt": "Hi"}]},
                {"role": "assistant", "content": [{"text": "x"}]},
            ],
        },
        "missing_field",
        "$.messages[0].content[0]",
    ),
    (
        "bedrock_conversation",
        {"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "system", "content": [{"text": "x"}]}]},
        "invalid_role",
        "$.messages[0].role",
    ),
    (
        "bedrock_conversation",
        {
            "schemaVersion": "bedrock-conversation-2024",
            "system": "x",
            "messages": [
                {"role": "user", "content": [{"text": "Hi"}]},
                {"role": "assistant", "content": [{"text": "x"}]},
            ],
        },
        "wrong_type",
        "$.system",
    ),
    (
        "bedrock_conversation",
        {"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
        "last_turn_not_assistant",
        "$.messages[0]",
    ),
]


def validate(path: Path, **options: Any):
    return validate_dataset([path.as_uri()], FileStore(), ValidationOptions(**options))


@pytest.mark.parametrize(("fmt", "bad", "code", "field"), CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_record_error_names_file_line_and_field(write_jsonl, fmt, bad, code, field):
    # Given a valid first line and a broken second line
    path = write_jsonl([VALID[fmt], bad, VALID[fmt]], name=f"{fmt}.jsonl")
    # When the file is validated with its format
    report = validate(path, format=fmt)
    # Then the report is rejected with exactly that error, located precisely
    assert not report.ok
    issue = next(i for i in report.errors if i.code == code)
    assert (issue.file, issue.line, issue.field) == (path.as_uri(), 2, field)
    assert f"{path.as_uri()}:2 {field}: " in issue.render()
    assert report.valid_records == 2


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_each_format_accepts_valid_records_and_is_detected(write_jsonl, fmt):
    path = write_jsonl([VALID[fmt]] * 3)
    report = validate(path)
    assert report.ok, report.errors
    assert report.format == fmt and report.format_detected
    assert any(f"format: auto chose {fmt}" in w for w in report.warnings)


def test_invalid_json_and_not_an_object(write_jsonl):
    path = write_jsonl([chat(), "{not json", "[1, 2]"])
    report = validate(path)
    codes = {(i.code, i.line) for i in report.errors}
    assert codes == {("invalid_json", 2), ("not_an_object", 3)}


def test_invalid_utf8_names_byte_offset(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = (json.dumps(chat()) + "\n").encode()
    path.write_bytes(good + b'{"text": "caf\xe9"}\n')
    report = validate(path)
    issue = report.errors[0]
    assert issue.code == "invalid_utf8" and issue.line == 2
    assert f"byte {len(good) + 13} of the file" in issue.message


def test_line_too_long_is_skipped_in_bounded_memory(write_jsonl):
    path = write_jsonl([chat(), chat(assistant="x" * 5000), chat(assistant="ok")])
    report = validate(path, limits=DataLimits(max_line_bytes=1000))
    assert [(i.code, i.line) for i in report.errors] == [("line_too_long", 2)]
    assert report.valid_records == 2


def test_too_many_records_stops_reading(write_jsonl):
    path = write_jsonl([chat(assistant=str(i)) for i in range(10)])
    report = validate(path, limits=DataLimits(max_records=3))
    issue = report.errors[0]
    assert (issue.code, issue.line) == ("too_many_records", 4)
    assert report.records == 4


def test_file_too_large(write_jsonl):
    path = write_jsonl([chat()] * 10)
    report = validate(path, limits=DataLimits(max_file_bytes=100))
    assert report.errors[0].code == "file_too_large" and report.errors[0].line is None


def test_gzip_is_streamed_and_multi_member(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(
        gzip.compress((json.dumps(chat()) + "\n").encode())
        + gzip.compress((json.dumps(chat(assistant="Lyon")) + "\n").encode())
    )
    report = validate(path)
    assert report.ok and report.valid_records == 2


def test_gzip_bomb_is_rejected_not_inflated(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b" " * 50_000_000))  # 50 MB of spaces in ~50 KB
    report = validate(path, limits=DataLimits(max_decompressed_bytes=1_000_000))
    assert report.errors[0].code == "decompressed_too_large"
    assert "gzip bomb" in report.errors[0].message


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(chat()) + "\n").encode() * 100)[:-30])
    report = validate(path)
    assert report.errors[-1].code == "corrupt_gzip"


def test_unknown_format_and_no_records(write_jsonl, tmp_path):
    report = validate(write_jsonl([{"foo": 1}]))
    assert report.errors[0].code == "unknown_format" and report.errors[0].field == "$"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert validate(empty).errors[0].code == "no_records"
    assert validate(tmp_path / "missing").errors[0].code == "no_files"


def test_text_file_paragraphs_and_format_mismatch(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("First paragraph line one.\nline two.\n\nSecond paragraph.\n")
    report = validate(folder)
    assert report.ok and report.format == "text" and report.records == 2
    (folder / "b.jsonl").write_text(json.dumps(chat()) + "\n")
    mixed = validate(folder, format="chat")
    assert any(i.code == "format_mismatch" for i in mixed.errors)


def test_identical_errors_are_capped_but_counted(write_jsonl):
    path = write_jsonl([{"prompt": "a"}] * 50)
    report = validate(path, format="prompt_completion", max_errors_per_code=5)
    assert report.error_counts == {"missing_field": 50}
    assert len(report.errors) == 5
