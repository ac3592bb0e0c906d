"""The local process pool gives the whole pass's report, and says how far it got (records and bytes of the
dataset, out of its bytes)."""

from __future__ import annotations

import random

import orjson

from tests.unit.data.test_shards import _line
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.parallel import validate_parallel
from trainforge.data.validation import ValidationProgress
from trainforge.local.file_store import FileStore
from trainforge.spec import DataLimits


def test_two_processes_give_the_whole_pass_report(tmp_path):
    rng = random.Random(11)
    pool: list[bytes] = []
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(b"\n".join(_line(rng, pool) for _ in range(400)) + b"\n")
    uris = [tmp_path.as_uri()]
    options = ValidationOptions(limits=DataLimits(max_line_bytes=4096), validation_fraction=0.1)
    seen = []
    parallel = validate_parallel(uris, FileStore(), options, processes=2, shard_bytes=20_000, progress=seen.append)
    whole = validate_dataset(uris, FileStore(), options)
    assert parallel.model_dump(exclude={"created_at"}) == whole.model_dump(exclude={"created_at"})
    total = sum(path.stat().st_size for path in tmp_path.iterdir())
    assert len(seen) > 4 and seen[-1] == ValidationProgress(whole.records, whole.bytes_read, total)
    assert [s.records for s in seen] == sorted(s.records for s in seen)
    assert [s.bytes for s in seen] == sorted(s.bytes for s in seen) and whole.bytes_read == total
    assert whole.exact_duplicates and whole.error_counts  # the data had something to find


def test_one_shard_takes_the_whole_pass_in_process(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps({"text": "one small record"}) + b"\n")
    seen = []
    report = validate_parallel([tmp_path.as_uri()], FileStore(), processes=2, progress=seen.append)
    assert report.ok and report.records == 1
    assert seen[-1] == ValidationProgress(1, report.bytes_read, (tmp_path / "a.jsonl").stat().st_size)


def test_the_whole_pass_reports_the_records_and_bytes_read_so_far_across_files(tmp_path):
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(orjson.dumps({"text": "x" * 100}) + b"\n")
    seen: list[ValidationProgress] = []
    report = validate_dataset([tmp_path.as_uri()], FileStore(), progress=seen.append)
    # each file: its block, its end
    assert [(s.records, s.bytes) for s in seen] == [(1, 112), (1, 112), (2, 224), (2, 224)]
    assert {s.total_bytes for s in seen} == {224} and report.bytes_read == 224
