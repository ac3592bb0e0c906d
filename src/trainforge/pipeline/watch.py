"""``trainforge watch``: the local twin of the S3 event path. A dropped or changed job spec starts a run;
new data starts runs of the jobs with ``trigger.on_new_data`` that read it; a spec's ``schedule`` fires as
EventBridge Scheduler would (``schedules.LocalSchedules``). Admission is idempotent (the run id hashes
spec and data versions), so a rescan or a firing on unchanged data never starts a run twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from trainforge.errors import TrainForgeError
from trainforge.pipeline.local_runner import LocalRunner
from trainforge.pipeline.schedules import LocalSchedules
from trainforge.settings import Settings
from trainforge.spec import parse_spec


def _specs(data_root: Path) -> list[Path]:
    return sorted(p for pattern in ("*.yaml", "*.yml", "*.json") for p in (data_root / "jobs").glob(pattern))


def scan(runner: LocalRunner, data_root: Path, seen: dict[Path, float], console: Console) -> list[str]:
    """One pass: the run ids started (or found already run) for what changed since ``seen``."""
    started = []
    changed_data = any(p.stat().st_mtime > seen.get(p, 0) for p in (data_root / "datasets").rglob("*") if p.is_file())
    for spec_path in _specs(data_root):
        mtime = spec_path.stat().st_mtime
        is_new = mtime > seen.get(spec_path, 0)
        try:
            spec = parse_spec(spec_path.read_bytes(), str(spec_path))
        except TrainForgeError as exc:
            if is_new:
                console.print(f"[red]{spec_path}[/]: {exc}")
            seen[spec_path] = mtime
            continue
        if is_new or (changed_data and spec.trigger.on_new_data):
            outcome = runner.run(spec_path, trigger="watch")
            started.append(outcome.run_id)
        seen[spec_path] = mtime
    for path in (data_root / "datasets").rglob("*"):
        if path.is_file():
            seen[path] = path.stat().st_mtime
    return started


def fire_schedules(
    runner: LocalRunner, data_root: Path, schedules: LocalSchedules, now: datetime | None = None
) -> list[str]:
    """Keep ``schedules`` in line with the specs' ``schedule`` fields, then run each job that is due, as the
    retrain function does in AWS: the run is reused when spec and data have not changed."""
    now = now or datetime.now(UTC)
    paths, expressions, keep = {}, {}, set()
    for spec_path in _specs(data_root):
        try:
            spec = parse_spec(spec_path.read_bytes(), str(spec_path))
        except TrainForgeError:
            keep.add(spec_path.stem)  # schedules follow the file name, as in AWS
            continue
        if spec.name != spec_path.stem:
            keep.add(spec_path.stem)
            continue
        paths[spec.name], expressions[spec.name] = spec_path, spec.schedule
    schedules.sync(expressions, now, frozenset(keep))
    started = []
    for job in schedules.due(now):
        started.append(runner.run(paths[job], trigger="schedule").run_id)
        schedules.fired(job, now)
    return started


def watch(settings: Settings, interval: float = 5.0, once: bool = False, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    data_root = settings.workspace.resolve() / "data"
    (data_root / "jobs").mkdir(parents=True, exist_ok=True)
    (data_root / "datasets").mkdir(parents=True, exist_ok=True)
    runner = LocalRunner(Settings(workspace=settings.workspace, data_uri=data_root.as_uri()), console=console)
    seen: dict[Path, float] = {}
    schedules = LocalSchedules(settings.workspace.resolve() / "schedules.json")
    console.print(f"watching {data_root}/jobs and {data_root}/datasets")
    while True:
        scan(runner, data_root, seen, console)
        fire_schedules(runner, data_root, schedules)
        if once:
            return 0
        time.sleep(interval)
