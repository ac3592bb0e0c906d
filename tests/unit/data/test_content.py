"""Content checks: duplicates, PII/secrets and their policies, token statistics, the split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import chat
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.dedup import Deduplicator, _first_occurrence, lsh_parameters
from trainforge.data.fingerprint import fingerprints
from trainforge.data.pii import find_pii, iban_ok, luhn_ok, pii_triggers
from trainforge.data.split import validation_mask
from trainforge.local.file_store import FileStore


def validate(path, **options):
    return validate_dataset([path.as_uri()], FileStore(), ValidationOptions(**options))


LONG = (
    "To reset your password open the account settings page, choose security, then select reset password "
    "and follow the link we send to the address on file. The link expires after thirty minutes."
)


def test_exact_and_near_duplicates_point_at_the_first_occurrence(write_jsonl):
    rows = [
        chat("How do I reset my password?", LONG),
        chat("Unrelated", "Something else entirely."),
        chat("how do i reset my password?", LONG),  # exact after case normalisation
        chat("How do I reset my password?", LONG.replace("thirty", "forty")),
    ]  # near
    report = validate(write_jsonl(rows))
    assert (report.exact_duplicates, report.near_duplicates) == (1, 1)
    found = {(d.code, d.line, d.message) for d in report.duplicate_examples}
    assert found == {
        ("exact_duplicate", 3, "exact duplicate of line 1"),
        ("near_duplicate", 4, "near duplicate of line 1"),
    }
    assert report.ok  # duplicates are warned about, not rejected


def test_near_duplicate_threshold_is_configurable():
    text_a = LONG
    text_b = LONG.replace("thirty minutes", "one hour, please be quick")
    strict = Deduplicator(threshold=0.99)
    loose = Deduplicator(threshold=0.5)
    for dedup in (strict, loose):
        for text in (text_a, text_b):
            prints = fingerprints([[text]], dedup.lsh, dedup.count)
            dedup.extend(prints.digests, prints.band_keys)
    assert strict.finish() == []
    assert [d.index for d in loose.finish()] == [1]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([0, 1, 7, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1), max_size=60))
def test_first_occurrence_is_the_first_index_of_each_key(keys):
    first_seen: dict[int, int] = {}
    expected = [first_seen.setdefault(key, index) for index, key in enumerate(keys)]
    assert _first_occurrence(np.array(keys, dtype=np.uint64)).tolist() == expected


def test_lsh_parameters_track_threshold():
    for threshold in (0.5, 0.7, 0.85, 0.95):
        bands, rows = lsh_parameters(threshold)
        assert bands * rows <= 128
        assert abs((1 / bands) ** (1 / rows) - threshold) < 0.03


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail jane.doe@example.com now", "email"),
        ("call +1 415 555 0132 today", "phone"),
        ("card 4111 1111 1111 1111 ok", "card_number"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "iban"),
        ("key AKIAIOSFODNN7EXAMPLE here", "aws_access_key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "private_key"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefghijkl", "bearer_token"),
    ],
)
def test_each_detector(text, kind):
    assert pii_triggers(text)
    assert [k for k, _, _ in find_pii(text)] == [kind]


def test_checksums_filter_false_positives():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert find_pii("order 4111 1111 1111 1112 shipped") == []
    assert find_pii("nothing to see here") == [] and not pii_triggers("nothing to see here")


def test_pii_report_policy_locates_field(write_jsonl):
    report = validate(write_jsonl([chat(), chat(assistant="Write to jane@example.com")]))
    assert report.ok and report.pii_counts == {"email": 1}
    finding = report.pii_findings[0]
    assert (finding.line, finding.field, finding.action) == (2, "$.messages[1].content", "reported")


def test_pii_reject_policy_rejects(write_jsonl):
    report = validate(write_jsonl([chat(assistant="key AKIAIOSFODNN7EXAMPLE")]), pii="reject")
    assert not report.ok and report.pii_findings[0].action == "rejected"


def test_pii_redact_writes_a_copy_and_leaves_the_source_alone(write_jsonl, tmp_path):
    source = write_jsonl([chat(assistant="Write to jane@example.com or call +1 415 555 0132")])
    before = source.read_bytes()
    target = tmp_path / "artifacts" / "redacted" / "data.jsonl"
    report = validate(source, pii="redact", redact_into={source.as_uri(): target.as_uri()})
    assert report.ok and report.redacted_uris == [target.as_uri()]
    assert source.read_bytes() == before
    redacted = json.loads(target.read_text())
    assert redacted["messages"][1]["content"] == "Write to [REDACTED_EMAIL] or call [REDACTED_PHONE]"


def test_pii_redact_keeps_each_input_in_its_own_copy(write_jsonl, tmp_path):
    """Given a train file and a held-out validation file, when both are redacted in one pass,
    then each copy holds only its own records (validation never leaks into the training copy)."""
    train = write_jsonl([chat(assistant=f"train {i} jane@example.com") for i in range(3)], "train.jsonl")
    held_out = write_jsonl([chat(assistant="held out: call +1 415 555 0132")], "validation.jsonl")
    targets = {name: tmp_path / "artifacts" / "redacted" / f"{name}.jsonl" for name in ("train", "validation")}
    report = validate_dataset(
        [train.as_uri(), held_out.as_uri()],
        FileStore(),
        ValidationOptions(
            pii="redact",
            redact_into={train.as_uri(): targets["train"].as_uri(), held_out.as_uri(): targets["validation"].as_uri()},
        ),
    )
    assert report.ok and report.redacted_uris == [targets["train"].as_uri(), targets["validation"].as_uri()]
    train_copy = [json.loads(line) for line in targets["train"].read_text().splitlines()]
    validation_copy = [json.loads(line) for line in targets["validation"].read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in train_copy] == [f"train {i} [REDACTED_EMAIL]" for i in range(3)]
    assert [r["messages"][1]["content"] for r in validation_copy] == ["held out: call [REDACTED_PHONE]"]


def test_split_is_deterministic_seeded_and_keeps_duplicates_together():
    digests = fingerprints(
        [[f"example {i}"] for i in range(2000)],
    ).digests
    first = validation_mask(digests, 7, 0.1)
    assert np.array_equal(first, validation_mask(digests, 7, 0.1))
    assert not np.array_equal(first, validation_mask(digests, 8, 0.1))
    assert 150 < first.sum() < 250
    same = fingerprints(
        [["Same  "], ["same"]],
    ).digests
    assert validation_mask(same, 1, 0.5).tolist() in ([True, True], [False, False])
    assert validation_mask(same, 1, 0.0).tolist() == [False, False]
    assert validation_mask(same, 1, 1.0).tolist() == [True, True]


def test_split_counts_in_report(write_jsonl):
    report = validate(
        write_jsonl([chat(assistant=f"answer {i}") for i in range(200)]), validation_fraction=0.2, split_seed=3
    )
    assert report.split is not None
    assert report.split.train_examples + report.split.validation_examples == 200
    assert 20 < report.split.validation_examples < 60


def test_token_stats_with_the_model_tokenizer(write_jsonl, tiny_model_dir):
    rows = [chat(assistant="paris is the capital of france " * n) for n in (1, 2, 40)]
    report = validate(write_jsonl(rows), tokenizer_file=tiny_model_dir / "tokenizer.json", max_seq_len=64)
    stats = report.token_stats
    assert stats is not None and stats.tokenizer == "tiny-llama-test"
    assert stats.truncated_examples == 1 and stats.max_tokens > 64
    assert sum(stats.histogram.values()) == 3
    assert stats.total_tokens > stats.max_tokens
