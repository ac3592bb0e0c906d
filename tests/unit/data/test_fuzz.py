"""Property: any input yields a DatasetReport (or a typed DatasetRejected), never another exception.

Three strategies x 3,400 examples = 10,200 generated inputs per run.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.contracts import DatasetReport
from trainforge.data import ValidationOptions, validate_dataset
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
@given(st.lists(mutated, min_size=1, max_size=4), st.sampled_from(["chat", "auto"]))
def test_mutated_records(records, _fmt):
    check("\n".join(json.dumps(r) for r in records).encode())
