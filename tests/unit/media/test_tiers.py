"""Which data format each tier trains on: a text dataset for a speech or image+text base model is refused
when validation knows the format (given or detected) and, for an explicit data.format, at the spec check."""

from __future__ import annotations

import json

import pytest

from trainforge.catalog import base_modality
from trainforge.data.validation import ValidationOptions, validate_dataset
from trainforge.local.file_store import FileStore
from trainforge.media.checks import format_refusal
from trainforge.pipeline.upload import check_spec

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize(
    ("tier", "expected"), [("speech", "data.format speech"), ("multimodal", "data.format multimodal")]
)
def test_chat_records_for_a_media_base_are_refused_naming_the_spec_fields(tmp_path, tier, expected):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(CHAT) + "\n")
    report = validate_dataset([path.as_uri()], FileStore(), ValidationOptions(modality=base_modality(tier)))
    assert report.format == "chat" and not report.ok
    [issue] = report.errors
    assert (issue.file, issue.line, issue.field, issue.code) == (
        path.resolve().as_uri(),
        None,
        "data.format",
        "format_not_for_base_model",
    )
    assert "base_model" in issue.message and expected in issue.message
    assert validate_dataset([path.as_uri()], FileStore(), ValidationOptions(modality="text")).ok


def test_the_rule_for_every_tier():
    assert format_refusal("speech", "speech") is None and format_refusal("multimodal", "vision-text") is None
    assert format_refusal("chat", "text") is None and format_refusal("chat", None) is None  # a folder URI
    text_base = format_refusal("speech", "text") or ""
    assert "a text format" in text_base and "speech records need base_model: speech" in text_base
    assert "trains on data.format speech" in (format_refusal("multimodal", "speech") or "")
    assert "data.format multimodal" in (format_refusal("speech", "vision-text") or "")


def test_an_explicit_format_is_checked_with_the_spec():
    spec = b"name: calls\nbase_model: speech\ndata:\n  train: datasets/calls/\n  format: prompt_completion\n"
    report = check_spec(spec, "jobs/calls.yaml")
    assert not report.ok and [(e.field, e.code) for e in report.errors] == [
        ("data.format", "format_not_for_base_model")
    ]
    assert check_spec(spec.replace(b"prompt_completion", b"speech"), "jobs/calls.yaml").ok
    assert check_spec(spec.replace(b"prompt_completion", b"auto"), "jobs/calls.yaml").ok  # judged on the data
