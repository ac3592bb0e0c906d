"""How far a validation has got: the local bar's figures, what the local runner's bar hears, and a run's
status in AWS while its Validate map runs (moto S3)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from tests.conftest import chat
from tests.unit.pipeline import test_prepare
from tests.unit.pipeline.test_prepare import ARTIFACTS, DATA, admitted
from tests.unit.pipeline.test_validation_fanout import run
from trainforge.cli import main
from trainforge.data.partial import PartialReport
from trainforge.data.validation import ValidationProgress
from trainforge.errors import UsageError
from trainforge.pipeline.admission import record_admission
from trainforge.pipeline.local_runner import LocalRunner
from trainforge.pipeline.progress import ValidationBar, validation_status
from trainforge.pipeline.validation_fanout import handle_merge, handle_plan, handle_shard, validate_run_here
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


#: moto S3 with the data and artifacts buckets and the tiny base model under base-models/tiny/
aws = test_prepare.aws
MAP_SPEC = """name: support
base_model: s3://tf-artifacts/base-models/tiny/
data: {train: datasets/support/, limits: {max_line_bytes: 2048}}
hyperparameters: {max_steps: 4, batch_size: 2, max_seq_len: 64}
"""


def planned_run(s3, monkeypatch, objects: dict[str, bytes]) -> tuple[dict, int]:
    """PlanValidation for a run of ``objects`` in shards of 4 KiB, as the map's first state runs it; (its
    input, its shards)."""
    monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", f"s3://{ARTIFACTS}")
    monkeypatch.setenv("TRAINFORGE_VALIDATION_SHARD_BYTES", "4096")
    for key, body in objects.items():
        s3.put_object(Bucket=DATA, Key=key, Body=body)
    request, spec = admitted(s3, MAP_SPEC)
    record_admission(request, spec, f"s3://{ARTIFACTS}")
    event = {"run": request.model_dump(mode="json")}
    return event, handle_plan(event, Settings())["shards"]


def partials_written(s3, run_id: str) -> list[PartialReport]:
    listed = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"runs/{run_id}/validation/partials/")["Contents"]
    return [PartialReport.from_bytes(s3.get_object(Bucket=ARTIFACTS, Key=o["Key"])["Body"].read()) for o in listed]


def test_a_runs_status_sums_the_partial_reports_written_so_far(aws, monkeypatch, capsys):
    """Given a run cut into many shards of which every other one has written its partial report, when its
    status is read, then its records and bytes are the sums of those partials, out of the data's bytes;
    once every shard and the merge are done, they are the report's."""
    lines = [json.dumps(chat(f"question {i}", f"answer {i} " + "x" * (i % 50))).encode() for i in range(500)]
    objects = {
        "datasets/support/a.jsonl": b"\n".join(lines[:450]) + b"\n",
        "datasets/support/b.jsonl": b"\n".join(lines[450:]) + b"\n",
    }
    total = sum(len(body) for body in objects.values())
    event, shards = planned_run(aws, monkeypatch, objects)
    run_id = event["run"]["run_id"]
    status = validation_status(run_id, f"s3://{ARTIFACTS}")
    assert shards > 8 and (status.shards, status.shards_done, status.report_uri) == (shards, 0, None)
    assert status.progress == ValidationProgress(records=0, bytes=0, total_bytes=total)

    done = range(0, shards, 2)  # every other item of the manifest, the digest item of a.jsonl among them
    for index in done:
        handle_shard({"run_id": run_id, "shard": index}, Settings())
    status = validation_status(run_id, f"s3://{ARTIFACTS}")
    partials = partials_written(aws, run_id)
    records, read = sum(p.records for p in partials), sum(p.bytes_read for p in partials)
    assert status.shards_done == len(partials) == len(done) and 0 < records < 500 and 0 < read < total
    assert status.progress == ValidationProgress(records=records, bytes=read, total_bytes=total)
    assert main(["runs", "status", run_id, "--artifacts", f"s3://{ARTIFACTS}"]) == 0
    shown = capsys.readouterr().out
    assert f"{len(done)} of {shards} written" in shown and f"{records:,} validated" in shown

    for index in range(1, shards, 2):
        handle_shard({"run_id": run_id, "shard": index}, Settings())
    report = handle_merge(event, Settings())
    status = validation_status(run_id, f"s3://{ARTIFACTS}")
    assert (
        status.progress
        == ValidationProgress(records=500, bytes=total, total_bytes=total)
        == ValidationProgress(records=report["records"], bytes=report["bytes_read"], total_bytes=total)
    )
    assert status.shards_done == shards and status.report_uri == report["report_uri"]


def test_a_run_without_a_validation_plan_says_why_it_has_no_status(aws):
    with pytest.raises(UsageError, match="has not reached PlanValidation"):
        validation_status("support-0123456789ab", f"s3://{ARTIFACTS}")
