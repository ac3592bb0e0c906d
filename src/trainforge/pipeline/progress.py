"""How far a validation has got: the bar a person watches on this machine (``ValidationBar``, for
``trainforge validate`` and the Validate step of ``trainforge run``)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from trainforge.data.validation import ValidationProgress


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
