"""Sharded validation on one machine: the shards of ``shards.py`` in a process pool, one process per core,
merged by the same reduce the AWS fan-out uses (``partial.merge_partials``)."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from trainforge.contracts import DatasetReport
from trainforge.data.partial import PartialReport, merge_partials, validate_shard
from trainforge.data.shards import SHARD_BYTES, Shard, plan_shards
from trainforge.data.validation import ValidationOptions, ValidationProgress, validate_dataset
from trainforge.store import ObjectStore, open_store


def validate_parallel(
    uris: list[str],
    store: ObjectStore,
    options: ValidationOptions = ValidationOptions(),
    processes: int | None = None,
    shard_bytes: int = SHARD_BYTES,
    progress: Callable[[ValidationProgress], None] | None = None,
) -> DatasetReport:
    """``validate_dataset``'s report, computed by ``processes`` workers (default: the cores this process
    may use) over shards of ``shard_bytes``. A dataset of one shard, or one process, takes the whole pass
    in this process: the pool would only add its start-up. ``progress`` hears the records and bytes
    validated so far, as ``validate_dataset``'s does: here the sums of the partial reports as each shard
    finishes, so the figures end at the merged report's."""
    processes = processes or len(os.sched_getaffinity(0))
    plan = plan_shards(uris, store, options, shard_bytes)
    if processes == 1 or sum(shard.kind != "digest" for shard in plan.shards) <= 1:
        return validate_dataset(uris, store, options, progress)
    records = done = 0
    partials: list[PartialReport] = []
    with tempfile.TemporaryDirectory(prefix="trainforge-shards-") as work:
        # spawn, not fork: the parent may hold threads (a progress bar, boto3's pools) that fork would copy
        # mid-operation; workers import only the validator
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            # a digest item streams a whole object: started first, it is not the one left running at the end
            ordered = sorted(plan.shards, key=lambda shard: shard.kind != "digest")
            futures = [pool.submit(_run_shard, shard, options, Path(work).as_uri()) for shard in ordered]
            for future in as_completed(futures):
                partial = future.result()
                partials.append(partial)
                records, done = records + partial.records, done + partial.bytes_read
                if progress is not None:
                    progress(ValidationProgress(records, done, plan.data_bytes))
        return merge_partials(plan, partials, options)


def _run_shard(shard: Shard, options: ValidationOptions, work_uri: str) -> PartialReport:
    return validate_shard(shard, open_store(shard.uri), options, work_uri)
