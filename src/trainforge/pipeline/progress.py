"""How far a validation has got: the bar a person watches on this machine (``ValidationBar``, for
``trainforge validate`` and the Validate step of ``trainforge run``), and a run's status while the Validate
map runs in AWS (``validation_status``), read from what the map already writes: the plan and the partial
reports written so far. The shards write nothing more for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from trainforge.data.partial import partial_uri, read_partial_counts
from trainforge.data.validation import ValidationProgress
from trainforge.errors import UsageError
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.validation_fanout import load_plan, plan_uri, validation_folder
from trainforge.store import join, open_store

#: partial reports whose headers are read at once (each is one short GET)
_READERS = 16


class ValidationBar:
    """A bar of the records and bytes validated, out of the dataset's bytes. Used as a context manager, and
    passed as the ``progress`` callback of ``validate_dataset``, ``validate_parallel`` or
    ``validate_run_here``, which call it per block or per shard (never per record)."""

    def __init__(self, console: Console, *, transient: bool = False, disable: bool = False) -> None:
        self._progress = Progress(
            TextColumn("validating"),
            BarColumn(),
            TextColumn("{task.fields[records]:,} records"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=transient,
            disable=disable,
        )
        self._task = self._progress.add_task("validating", total=None, records=0)

    def __enter__(self) -> ValidationBar:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, seen: ValidationProgress) -> None:
        self._progress.update(self._task, completed=seen.bytes, total=seen.total_bytes, records=seen.records)


class ValidationStatus(BaseModel):
    """Where a run's Validate map stands, from the artifacts bucket alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    #: the map's items (the plan's shards, ``digest`` items included)
    shards: int
    #: the items that have written their partial report so far
    shards_done: int
    #: the sums of those partial reports' records and bytes, out of the bytes of the run's data
    progress: ValidationProgress
    #: the run's DatasetReport, once MergeValidation has written it
    report_uri: str | None = None


def validation_status(run_id: str, artifacts_uri: str) -> ValidationStatus:
    """How far the run's sharded validation has got: the plan (written by PlanValidation) gives the shards
    and the data's bytes; each partial report under ``validation/partials/`` adds its records and bytes,
    read from its header only. A shard still running, or failed, counts nothing until it writes one."""
    plan_at = plan_uri(artifacts_uri, run_id)
    store = open_store(plan_at)
    if not store.exists(plan_at):
        raise UsageError(
            f"run {run_id}: no validation plan at {plan_at}: the run has not reached PlanValidation, "
            "or it was validated on one machine (trainforge run shows its progress as it goes)"
        )
    plan = load_plan(artifacts_uri, run_id).plan
    folder = validation_folder(artifacts_uri, run_id)
    written = {info.uri.rsplit("/", 1)[-1] for info in store.list(join(folder, "partials"))}
    present = [
        uri for uri in (partial_uri(folder, shard) for shard in plan.shards) if uri.rsplit("/", 1)[-1] in written
    ]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        counts = list(pool.map(lambda uri: read_partial_counts(store, uri), present))
    report = RunLayout(artifacts_uri, run_id).dataset_report
    return ValidationStatus(
        run_id=run_id,
        shards=len(plan.shards),
        shards_done=len(counts),
        progress=ValidationProgress(
            records=sum(records for records, _ in counts),
            bytes=sum(read for _, read in counts),
            total_bytes=plan.data_bytes,
        ),
        report_uri=report if store.exists(report) else None,
    )
