"""The Validate step on one machine (``validate_run_here``): the map's inputs, shards in a process pool,
the report stored where the state machine's merge stores it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat
from trainforge.errors import DatasetRejected
from trainforge.pipeline.admission import admit, record_admission
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.validation_fanout import validate_run_here
from trainforge.store import open_store

SPEC = """name: support
base_model: {base}
data: {{train: datasets/support/, pii: redact}}
hyperparameters: {{max_steps: 4, batch_size: 2, max_seq_len: 64}}
"""


def run(tmp_path, tiny_model_dir, rows: list[dict]):
    data = tmp_path / "data" / "datasets" / "support"
    data.mkdir(parents=True)
    (data / "a.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[: len(rows) // 2]))
    (data / "b.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[len(rows) // 2 :]))
    platform = Platform(data_root=(tmp_path / "data").as_uri(), artifacts_uri=(tmp_path / "art").as_uri(), local=False)
    spec_text = SPEC.format(base=tiny_model_dir.as_uri() + "/").encode()
    (tmp_path / "data" / "jobs").mkdir()
    (tmp_path / "data" / "jobs" / "support.yaml").write_bytes(spec_text)
    request, spec = admit(
        platform.data_root + "/jobs/support.yaml", spec_text, None, platform.data_root, platform.artifacts_uri, "cli"
    )
    record_admission(request, spec, platform.artifacts_uri)
    return request, spec, platform


def test_the_run_is_validated_with_its_tokenizer_and_its_redacted_copy_written(tmp_path, tiny_model_dir):
    rows = [
        chat(f"question {i}", f"answer {i}" + (" mail me at jane@example.com" if i == 3 else "")) for i in range(20)
    ]
    request, spec, platform = run(tmp_path, tiny_model_dir, rows)
    report = validate_run_here(request, spec, platform, processes=2)
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    assert report.ok and report.valid_records == 20 and report.report_uri == layout.dataset_report
    assert report.token_stats is not None and report.token_stats.tokenizer == tiny_model_dir.name
    redacted = layout.channel("train") + "/redacted.jsonl"
    assert report.redacted_uris == [redacted]
    assert b"[REDACTED_EMAIL]" in open_store(redacted).read_bytes(redacted)


def test_unfit_data_is_rejected_naming_the_stored_report(tmp_path, tiny_model_dir):
    rows = [chat(f"q {i}", f"a {i}") for i in range(10)] + [{"messages": [{"role": "user", "content": "x"}]}]
    request, spec, platform = run(tmp_path, tiny_model_dir, rows)
    with pytest.raises(DatasetRejected) as rejected:
        validate_run_here(request, spec, platform)
    assert rejected.value.details == RunLayout(platform.artifacts_uri, request.run_id).dataset_report
