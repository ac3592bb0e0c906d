"""Properties of the validator over generated inputs.

- Any input yields a DatasetReport (or a typed DatasetRejected), never another exception: three strategies
  x 3,400 examples = 10,200 generated inputs per run.
- The fast path (whole blocks through msgspec) and the per-line checkers give the same report for every
  input: 1,500 more, in small blocks so that format detection, block edges and both paths all meet.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.contracts import DatasetReport
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.fast import FAST_FORMATS
from trainforge.errors import DatasetRejected
from trainforge.local.file_store import FileStore
from trainforge.spec import DataLimits

EXAMPLES = 3400
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
OPTIONS = ValidationOptions(
    limits=DataLimits(max_line_bytes=4096, max_decompressed_bytes=1 << 20), validation_fraction=0.1
)
_DIR = Path(tempfile.mkdtemp(prefix="tf-fuzz-"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "messages",
                    "role",
                    "content",
                    "prompt",
                    "completion",
                    "text",
                    "chosen",
                    "rejected",
                    "schemaVersion",
                    "system",
                    "weight",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "", None])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.one_of(st.text(max_size=30), st.integers(), st.none())}),
    max_size=5,
)
mutated = st.one_of(
    st.builds(lambda m: {"messages": m}, messages),
    st.builds(
        lambda p, c: {"prompt": p, "completion": c}, st.text(max_size=20), st.one_of(st.text(max_size=20), st.none())
    ),
    st.builds(lambda c, r: {"prompt": "q", "chosen": c, "rejected": r}, st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda m: {"schemaVersion": "bedrock-conversation-2024", "messages": m}, json_values),
)


text = st.one_of(
    st.text(st.characters(codec="ascii"), min_size=1, max_size=20),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=20),
    st.text(max_size=8),
    st.sampled_from(["", "  ", "\ud800", "mail a@b.io", "card 4111 1111 1111 1111", "A" * 300]),
)
# system?, (user, assistant) x n: a valid conversation unless a content or weight says otherwise
conversations = st.builds(
    lambda system, pairs: ["system"] * system + ["user", "assistant"] * pairs, st.integers(0, 1), st.integers(1, 2)
)
weights = st.sampled_from([None, None, None, 0, 1, 0.5, -1, 2, True, "1", 1e400])
chat_records = st.builds(
    lambda turns, weight, extra: {
        "messages": [
            {"role": role, "content": content, **({"weight": weight} if weight is not None else {})}
            for role, content in turns
        ],
        **extra,
    },
    conversations.flatmap(lambda roles: st.tuples(*(st.tuples(st.just(role), text) for role in roles)))
    | st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), text), min_size=1, max_size=4),
    weights,
    st.sampled_from([{}, {}, {"id": 7}, {"metadata": {"a": [1]}}, {"other": 1}, {"weight": 0.5}]),
)
well_formed = {
    "chat": chat_records,
    "prompt_completion": st.builds(lambda p, c: {"prompt": p, "completion": c}, text, text),
    "text": st.builds(lambda t: {"text": t}, text),
}
separators = st.sampled_from(["\n"] * 30 + ["\r\n", "\n\n", "\n  \n", " ", ""])


def check(data: bytes, name: str = "in.jsonl") -> None:
    path = _DIR / name
    path.write_bytes(data)
    try:
        report = validate_dataset([path.as_uri()], FileStore(), OPTIONS)
    except DatasetRejected:
        return
    assert isinstance(report, DatasetReport)
    assert report.ok == (not report.error_counts)


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes(data, compress):
    check(gzip.compress(data) if compress else data, "in.jsonl.gz" if compress else "in.jsonl")


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=4))
def test_random_json(values):
    check("\n".join(json.dumps(v) for v in values).encode())


@FUZZ
@given(st.lists(mutated, min_size=1, max_size=4))
def test_mutated_records(records):
    check("\n".join(json.dumps(r) for r in records).encode())


def _dataset(fmt: str) -> st.SearchStrategy[tuple[str, list[tuple[dict, str]]]]:
    """Records of one format (so whole blocks pass the fast path), or that format mixed with others and
    broken ones."""
    mostly = well_formed.get(fmt, chat_records)
    mixed = st.one_of(mostly, mostly, mostly, *well_formed.values(), mutated)
    lines = st.lists(st.tuples(mostly, separators), min_size=1, max_size=10) | st.lists(
        st.tuples(mixed, separators), min_size=1, max_size=10
    )
    return st.tuples(st.just(fmt), lines)


@settings(FUZZ, max_examples=1500)
@given(st.sampled_from(["auto", "chat", "prompt_completion", "text"]).flatmap(_dataset))
def test_fast_path_agrees_with_the_per_line_checkers(dataset):
    fmt, records = dataset
    data = "".join(json.dumps(record) + separator for record, separator in records).encode()
    path = _DIR / "agree.jsonl"
    path.write_bytes(data)
    options = replace(OPTIONS, format=fmt, limits=DataLimits(max_line_bytes=600))
    fast = validate_dataset([path.as_uri()], FileStore(), options)
    with patch.dict(FAST_FORMATS, clear=True):
        slow = validate_dataset([path.as_uri()], FileStore(), options)
    assert fast.model_dump(exclude={"created_at"}) == slow.model_dump(exclude={"created_at"})


def test_fast_schemas_accept_exactly_the_fields_the_checkers_allow():
    from trainforge.data import fast, formats

    assert set(fast.ChatRecord.__struct_fields__) == formats._CHAT_KEYS
    assert set(fast.ChatMessage.__struct_fields__) == formats._MESSAGE_KEYS
    assert set(fast.PromptCompletionRecord.__struct_fields__) == formats._PC_KEYS
    assert set(fast.TextRecord.__struct_fields__) == formats._TEXT_KEYS
