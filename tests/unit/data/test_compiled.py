"""The compiled loops (``_scan.c``) and their pure-Python twins give the same answers, bit for bit."""

from __future__ import annotations

import os
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import chat
from trainforge.data import fast, fingerprint, pii
from trainforge.data.compiled import scan

needs_scan = pytest.mark.skipif(scan is None, reason="the C extension was not built here")

# what the loops branch on: digits, pattern starts, case, multi-byte characters, and plain text (no lone
# surrogates: every text comes from a strict UTF-8 decoder)
trigger_rich = st.text(
    st.sampled_from(list("aA@0123456789KIASBCPRIVATE Kearerb-\n\té€😀")) | st.characters(exclude_categories=["Cs"]),
    max_size=160,
)


def test_the_extension_is_built_where_a_compiler_is():
    # CI has a C compiler: a silent fallback to the twins there would be a build regression
    if os.environ.get("CI") == "true":
        assert scan is not None


@needs_scan
@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    st.lists(st.lists(trigger_rich, min_size=1, max_size=3), max_size=10),
    st.sampled_from([None, (1, 128), (9, 13), (20, 6), (128, 1)]),
    st.integers(0, 2**40),
)
def test_fingerprints_match_the_numpy_twin(batch, lsh, first):
    # short texts leave bins empty (densified) or have no shingle at all (keys unique to the record index)
    compiled = fingerprint.fingerprints(batch, lsh, first)
    with patch.object(fingerprint, "scan", None):
        twin = fingerprint.fingerprints(batch, lsh, first)
    assert np.array_equal(compiled.digests, twin.digests)
    assert np.array_equal(compiled.triggers, twin.triggers)
    if lsh:
        assert np.array_equal(compiled.band_keys, twin.band_keys)
    else:
        assert compiled.band_keys is None and twin.band_keys is None


@needs_scan
@settings(max_examples=2000, deadline=None, derandomize=True)
@given(trigger_rich)
def test_pii_triggers_match_the_python_twin(text):
    assert pii.pii_triggers(text) == pii._pii_triggers(text)


contents = st.sampled_from(["hi", " ", "\u3000\x1c", "\t\n", " a ", "é"]) | st.text(min_size=1, max_size=5)
any_turns = st.lists(st.sampled_from(["system", "user", "assistant"]), min_size=1, max_size=5)
valid_turns = st.builds(
    lambda system, pairs: ["system"] * system + ["user", "assistant"] * pairs, st.integers(0, 1), st.integers(1, 2)
)
records = (
    (valid_turns | any_turns)
    .flatmap(lambda roles: st.tuples(*(st.builds(fast.ChatMessage, st.just(role), contents) for role in roles)))
    .map(lambda messages: fast.ChatRecord(list(messages)))
)


@needs_scan
@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.lists(records, max_size=4))
def test_chat_texts_match_the_python_twin(batch):
    assert scan is not None
    assert scan.chat_texts(batch) == fast._each(fast._chat_texts)(batch)


@needs_scan
@pytest.mark.parametrize(
    ("text", "triggers"),
    [
        ("plain words only, nothing else here at all", 0),
        ("x" * 40 + "a@b", pii.EMAIL),
        ("x" * 15 + "12" + "3", pii.DIGITS),  # a run across the 16-byte skip boundary
        ("12 34 56", 0),
        ("AKIA" + "x" * 30 + "Bearer PRIVATE KEY", pii.AWS | pii.BEARER | pii.PRIVATE_KEY),
        ("ACC", 0),  # the pattern runs past the end of the text
    ],
)
def test_pii_triggers_examples(text, triggers):
    assert pii.pii_triggers(text) == pii._pii_triggers(text) == triggers


@needs_scan
@pytest.mark.parametrize("offset", range(40))
def test_pii_triggers_find_every_pattern_at_every_offset_of_the_16_byte_skip(offset):
    """The compiled pre-filter skips 16 bytes at a time on their first bytes; a pattern or a run of
    digits that starts at any offset, or that straddles two 16-byte windows, is still found."""
    cases = {"123": pii.DIGITS, "a@b": pii.EMAIL, "AKIA": pii.AWS, "bearer": pii.BEARER, "PRIVATE KEY": pii.PRIVATE_KEY}
    for pattern, bit in cases.items():
        text = "x" * offset + pattern + "y" * 40
        assert pii.pii_triggers(text) == pii._pii_triggers(text) == bit, (pattern, offset)
    for run in ("1" * 2 + " " + "1", "12"):  # no run of three: nothing
        text = "x" * offset + run + "y" * 40
        assert pii.pii_triggers(text) == pii._pii_triggers(text) == 0, (run, offset)


LSH = (9, 13)


@pytest.mark.parametrize("compiled", [True, False])
def test_normal_form_and_record_boundaries(compiled):
    with patch.object(fingerprint, "scan", fingerprint.scan if compiled else None):
        batch = [["Reset The Password "], ["  reset the password"], ["reset", "the password"]]
        prints = fingerprint.fingerprints(batch, LSH)
        assert prints.digests[0] == prints.digests[1] != prints.digests[2]  # the separator is part of the text
        assert np.array_equal(prints.band_keys[0], prints.band_keys[1])
        # a window spanning two records belongs to neither: a record's keys do not depend on its neighbours
        alone = fingerprint.fingerprints([["abcdefghij"]], LSH).band_keys[0]
        assert np.array_equal(fingerprint.fingerprints([["zzzzzzzz"], ["abcdefghij"]], LSH).band_keys[1], alone)
        # a text without a single 8-byte shingle matches nothing, not even an equal one
        tiny = fingerprint.fingerprints([["abc"], ["abc"]], LSH).band_keys
        assert not (tiny[0] == tiny[1]).any()


@needs_scan
def test_validation_reports_are_the_same_on_the_twins(write_jsonl, monkeypatch):
    from trainforge.data import ValidationOptions, validate_dataset
    from trainforge.local.file_store import FileStore

    rows = [chat(f"How do I reset password {i % 7}?", f"Open settings and choose reset, step {i}.") for i in range(300)]
    rows += [chat("Where is my order?", "Write to jane.doe@example.com or call +1 415 555 0132")] * 3
    path = write_jsonl(rows)
    options = ValidationOptions(format="chat", validation_fraction=0.2)
    compiled = validate_dataset([path.as_uri()], FileStore(), options)
    monkeypatch.setattr(fingerprint, "scan", None)
    monkeypatch.setattr(pii, "pii_triggers", pii._pii_triggers)
    twins = validate_dataset([path.as_uri()], FileStore(), options)
    assert compiled.near_duplicates > 0 and compiled.pii_counts
    assert compiled.model_dump(exclude={"created_at"}) == twins.model_dump(exclude={"created_at"})


@needs_scan
@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([b"{}", b"", b" ", b"\t{}", b"\r", b"x"]), max_size=6), st.booleans())
def test_line_summary_matches_the_numpy_twin(lines, final_newline):
    from trainforge.data import reader

    block = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    assert scan is not None
    assert scan.line_summary(block) == reader._line_summary(block)
