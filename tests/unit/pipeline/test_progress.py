"""How far a validation has got: the local bar's figures, and what the local runner's bar hears."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tests.conftest import chat
from tests.unit.pipeline.test_validation_fanout import run
from trainforge.data.validation import ValidationProgress
from trainforge.pipeline.local_runner import LocalRunner
from trainforge.pipeline.progress import ValidationBar
from trainforge.pipeline.validation_fanout import validate_run_here
from trainforge.settings import Settings

RUN_SPEC = """name: support
base_model: {base}
data: {{train: datasets/support/train.jsonl}}
hyperparameters: {{max_steps: 4, batch_size: 2, max_seq_len: 64}}
"""


def test_the_bar_shows_the_records_and_bytes_validated_out_of_the_dataset():
    out = io.StringIO()
    with ValidationBar(Console(file=out, width=120)) as bar:
        bar(ValidationProgress(records=10, bytes=1_000, total_bytes=4_000))
        bar(ValidationProgress(records=12_345, bytes=4_000, total_bytes=4_000))
    assert "12,345 records" in out.getvalue() and "4.0/4.0 kB" in out.getvalue()


def test_the_run_validated_here_reports_records_and_bytes_up_to_the_dataset_totals(tmp_path, tiny_model_dir):
    rows = [chat(f"question {i}", f"answer {i}") for i in range(40)]
    request, spec, platform = run(tmp_path, tiny_model_dir, rows)
    seen: list[ValidationProgress] = []
    report = validate_run_here(request, spec, platform, processes=2, progress=seen.append)
    total = sum(path.stat().st_size for path in (tmp_path / "data" / "datasets" / "support").iterdir())
    assert [s.records for s in seen] == sorted(s.records for s in seen)
    assert [s.bytes for s in seen] == sorted(s.bytes for s in seen)
    assert seen[-1] == ValidationProgress(records=40, bytes=total, total_bytes=total) and report.records == 40


def test_trainforge_run_shows_the_validation_bar(tmp_path, tiny_model_dir):
    """Given data the Validate step rejects, when the local runner runs it, then its console shows how many
    records and bytes were validated before the run stopped there."""
    data = tmp_path / "data"
    (data / "datasets" / "support").mkdir(parents=True)
    lines = [chat("a", "b"), chat("c", "d"), {"messages": [{"role": "user", "content": "no answer"}]}]
    (data / "datasets" / "support" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    (data / "jobs").mkdir()
    spec = data / "jobs" / "support.yaml"
    spec.write_text(RUN_SPEC.format(base=tiny_model_dir.as_uri() + "/"))
    out = io.StringIO()
    runner = LocalRunner(Settings(workspace=tmp_path / "ws", data_uri=data.as_uri()), Console(file=out, width=120))
    outcome = runner.run(spec)
    assert outcome.steps == ["PlanValidation", "MergeValidation"] and outcome.failure.error == "DatasetRejected"
    size = (data / "datasets" / "support" / "train.jsonl").stat().st_size
    assert "3 records" in out.getvalue() and f"{size}/{size} bytes" in out.getvalue()
