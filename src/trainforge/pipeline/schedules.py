"""EventBridge Scheduler schedules that start the retrain function for a job (or re-score its endpoint), and
their local twin.

Three kinds, all in the stack's group; the first two invoke ``retrain`` with ``{"job": NAME}``:

- ``NAME-retrain``: the spec's ``schedule:``. Every change under ``jobs/`` (an upload or a delete)
  reconciles it with the job's *current* spec, so events that arrive late or twice leave it right: a spec
  with ``schedule`` creates it, a changed expression updates it, a spec without the field (or no spec)
  deletes it. A rate schedule starts one period after the upload (the upload itself already started a
  run; without a start date a rate schedule fires at once).
- ``NAME-new-data``: ``trigger.on_new_data`` uses a one-time schedule as a debounce: every object that
  lands under a job's data moves it to ``quiet_minutes`` after it, so a multi-file upload starts one run,
  on all of its files, once the uploads stop.
- ``NAME-continuous-evaluation``: the spec's ``deploy.continuous_evaluation.schedule``, kept in line with
  the spec as ``NAME-retrain`` is; it invokes ``continuous_evaluation`` with ``{"endpoint": NAME}``.

Retrain admits the newest data only if its content changed since the last successful run
(``handlers.handle_retrain``), which also makes a duplicate firing harmless. Locally ``trainforge watch``
keeps the same schedules in ``WORKSPACE/schedules.json`` (``LocalSchedules``) and fires them through the
local runner, whose admission reuses a run whose spec and data have not changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from trainforge.errors import TrainForgeError
from trainforge.pipeline.keys import classify_key
from trainforge.pipeline.recurrence import Rate, next_fire, parse
from trainforge.settings import Settings
from trainforge.spec import parse_spec
from trainforge.store import ObjectStore, join, open_store

#: the file extensions a job spec may have, in the order a job name is looked up
SPEC_EXTENSIONS = ("yaml", "yml", "json")

Change = Literal["created", "updated", "unchanged", "deleted", "absent"]


def new_data_schedule_name(job_name: str) -> str:
    """Job names are at most 40 characters; schedule names at most 64."""
    return f"{job_name}-new-data"


def retrain_schedule_name(job_name: str) -> str:
    return f"{job_name}-retrain"


def evaluation_schedule_name(job_name: str) -> str:
    """At most 40 + 22 characters: within the 64 a schedule name may have."""
    return f"{job_name}-continuous-evaluation"


def job_spec_uri(store: ObjectStore, data_root: str, job_name: str) -> str | None:
    """The job's current spec, ``jobs/NAME.yaml`` (or .yml, .json), or None when there is none."""
    candidates = [join(data_root, "jobs", f"{job_name}.{ext}") for ext in SPEC_EXTENSIONS]
    return next((uri for uri in candidates if store.exists(uri)), None)


def _retrain_target(job_name: str, settings: Settings) -> dict[str, str]:
    return {
        "Arn": settings.retrain_function_arn,
        "RoleArn": settings.scheduler_role_arn,
        "Input": json.dumps({"job": job_name}),
    }


def _recurring(
    name: str, expression: str, target: dict[str, str], description: str, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The CreateSchedule / UpdateSchedule body of a recurring schedule in the stack's group."""
    request: dict[str, Any] = {
        "Name": name,
        "GroupName": settings.schedule_group,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target,
        "State": "ENABLED",
        "Description": description,
    }
    start = first_start(expression, now)
    if start is not None:
        request["StartDate"] = start
    return request


def _put(client: Any, request: dict[str, Any]) -> Literal["created", "updated"]:
    """UpdateSchedule, or CreateSchedule where there is none; a concurrent creator wins and is updated."""
    try:
        client.update_schedule(**request)
        return "updated"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    try:
        client.create_schedule(**request)
        return "created"
    except ClientError as race:
        if race.response["Error"]["Code"] != "ConflictException":
            raise
    client.update_schedule(**request)
    return "updated"


def debounce_new_data(
    job_name: str, quiet_minutes: int, settings: Settings, client: Any = None, now: datetime | None = None
) -> str:
    """Create or move the job's one-time schedule to ``quiet_minutes`` from now; returns its expression."""
    fire_at = (now or datetime.now(UTC)) + timedelta(minutes=quiet_minutes)
    expression = f"at({fire_at.strftime('%Y-%m-%dT%H:%M:%S')})"
    _put(
        client or boto3.client("scheduler"),
        {
            "Name": new_data_schedule_name(job_name),
            "GroupName": settings.schedule_group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": _retrain_target(job_name, settings),
            # a fired one-time schedule deletes itself, so the next upload creates a fresh one
            "ActionAfterCompletion": "DELETE",
            "Description": f"TrainForge: retrain {job_name} once new data has stopped arriving",
        },
    )
    return expression


def retrain_schedule_request(job_name: str, expression: str, settings: Settings, now: datetime) -> dict[str, Any]:
    """The CreateSchedule / UpdateSchedule body of a job's recurring retraining."""
    description = f"TrainForge: retrain {job_name} on {expression} if its data changed (the spec's schedule)"
    target = _retrain_target(job_name, settings)
    return _recurring(retrain_schedule_name(job_name), expression, target, description, settings, now)


def evaluation_schedule_request(job_name: str, expression: str, settings: Settings, now: datetime) -> dict[str, Any]:
    """The CreateSchedule / UpdateSchedule body of the continuous evaluation of a job's endpoint."""
    target = {
        "Arn": settings.continuous_evaluation_function_arn,
        "RoleArn": settings.scheduler_role_arn,
        "Input": json.dumps({"endpoint": job_name}),
    }
    description = f"TrainForge: re-score endpoint {job_name}'s versions on {expression} (deploy.continuous_evaluation)"
    return _recurring(evaluation_schedule_name(job_name), expression, target, description, settings, now)


def first_start(expression: str, now: datetime) -> datetime | None:
    """A rate schedule's first occurrence: one period from now (the upload that set it already started a
    run). Cron schedules fire at the times they name and need none."""
    schedule = parse(expression)
    if not isinstance(schedule, Rate):
        return None
    return (now.astimezone(UTC) + schedule.every).replace(second=0, microsecond=0)


def sync_retrain_schedule(
    job_name: str, expression: str | None, settings: Settings, client: Any = None, now: datetime | None = None
) -> Change:
    """Make the job's recurring schedule say ``expression`` (None: no schedule)."""
    return _sync(retrain_schedule_name(job_name), expression, retrain_schedule_request, job_name, settings, client, now)


def sync_evaluation_schedule(
    job_name: str, expression: str | None, settings: Settings, client: Any = None, now: datetime | None = None
) -> Change:
    """Make the job's continuous evaluation schedule say ``expression`` (None: no schedule)."""
    return _sync(
        evaluation_schedule_name(job_name), expression, evaluation_schedule_request, job_name, settings, client, now
    )


def _sync(
    name: str,
    expression: str | None,
    build: Callable[[str, str, Settings, datetime], dict[str, Any]],
    job_name: str,
    settings: Settings,
    client: Any,
    now: datetime | None,
) -> Change:
    """Create, update or delete the recurring schedule ``name``. An unchanged expression is left alone, so
    re-uploading a spec does not move a rate schedule's start."""
    client = client or boto3.client("scheduler")
    try:
        current = client.get_schedule(GroupName=settings.schedule_group, Name=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        current = None
    if expression is None:
        if current is None:
            return "absent"
        client.delete_schedule(GroupName=settings.schedule_group, Name=name)
        return "deleted"
    if current is not None and current.get("ScheduleExpression") == expression:
        return "unchanged"
    return _put(client, build(job_name, expression, settings, now or datetime.now(UTC)))


def reconcile_schedule(
    data_root: str, raw_key: str, settings: Settings, client: Any = None, now: datetime | None = None
) -> dict[str, str]:
    """An object under ``jobs/`` was created or deleted: bring the job's schedules (retraining, and continuous
    evaluation under ``evaluation_schedule``) in line with its spec as it is now (not as the event says it
    was: events may come late, twice or out of order). A spec that does not parse leaves them as they were;
    its validation report says what is wrong."""
    uploaded = classify_key(raw_key)
    if uploaded.kind != "job":
        return {"job": "", "schedule": "absent", "evaluation_schedule": "absent", "reason": "not a job spec"}
    store = open_store(join(data_root, "jobs"))
    spec_uri = job_spec_uri(store, data_root, uploaded.name)
    expression = evaluation = None
    if spec_uri is not None:
        try:
            spec = parse_spec(store.read_bytes(spec_uri), spec_uri)
        except TrainForgeError:
            reason = f"{spec_uri} is not a valid job spec"
            return {"job": uploaded.name, "schedule": "unchanged", "evaluation_schedule": "unchanged", "reason": reason}
        if spec.name != uploaded.name:
            reason = f"{spec_uri} names job '{spec.name}'; schedules follow the file name"
            return {"job": uploaded.name, "schedule": "unchanged", "evaluation_schedule": "unchanged", "reason": reason}
        expression = spec.schedule
        evaluation = spec.deploy.continuous_evaluation.schedule if spec.deploy.continuous_evaluation else None
    change = sync_retrain_schedule(uploaded.name, expression, settings, client, now)
    evaluation_change = sync_evaluation_schedule(uploaded.name, evaluation, settings, client, now)
    reason = f"schedule {expression}" if expression else ("no spec" if spec_uri is None else "no schedule in the spec")
    return {"job": uploaded.name, "schedule": change, "evaluation_schedule": evaluation_change, "reason": reason}


# --- what is scheduled, in both modes -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledRun:
    """One row of ``trainforge schedules list``."""

    job: str
    name: str
    expression: str
    next_fire: datetime | None
    state: str = "ENABLED"


def _job_of(schedule_name: str) -> str:
    for suffix in ("-retrain", "-new-data", "-continuous-evaluation"):
        if schedule_name.endswith(suffix):
            return schedule_name.removesuffix(suffix)
    return schedule_name


def aws_schedules(group: str, client: Any = None, now: datetime | None = None) -> list[ScheduledRun]:
    """Every schedule in the stack's group with its next fire time (ListSchedules has no expressions)."""
    client = client or boto3.client("scheduler")
    now = now or datetime.now(UTC)
    rows = []
    for page in client.get_paginator("list_schedules").paginate(GroupName=group):
        for summary in page["Schedules"]:
            schedule = client.get_schedule(GroupName=group, Name=summary["Name"])
            expression = schedule["ScheduleExpression"]
            fires = next_fire(expression, now, schedule.get("StartDate")) if schedule["State"] == "ENABLED" else None
            rows.append(ScheduledRun(_job_of(summary["Name"]), summary["Name"], expression, fires, schedule["State"]))
    return sorted(rows, key=lambda row: row.name)


class LocalSchedules:
    """The spec schedules ``trainforge watch`` keeps, in a JSON file: per job, its expression, the time it
    was set (a rate schedule's anchor, as StartDate is in AWS) and when it last fired. A schedule missed
    while nothing watched fires once, not once per missed period."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, str]]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _save(self, state: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(state, indent=2, sort_keys=True))

    def sync(
        self, expressions: dict[str, str | None], now: datetime, keep: frozenset[str] = frozenset()
    ) -> dict[str, Change]:
        """Bring the file in line with the specs' ``schedule`` fields (job name -> expression or None); the
        jobs in ``keep`` (a spec that does not parse) keep what they had, as in AWS."""
        state, changes = self._load(), dict[str, Change]()
        for job, expression in expressions.items():
            current = state.get(job)
            if expression is None:
                changes[job] = "deleted" if state.pop(job, None) else "absent"
            elif current is not None and current["expression"] == expression:
                changes[job] = "unchanged"
            else:
                start = first_start(expression, now)
                state[job] = {
                    "expression": expression,
                    "set": now.isoformat(),
                    "start": start.isoformat() if start else "",
                    "last_fired": "",
                }
                changes[job] = "updated" if current else "created"
        for job in set(state) - set(expressions) - keep:  # its spec is gone
            del state[job]
            changes[job] = "deleted"
        self._save(state)
        return changes

    @staticmethod
    def _next(entry: dict[str, str], after: datetime) -> datetime | None:
        start = datetime.fromisoformat(entry["start"]) if entry["start"] else None
        return next_fire(entry["expression"], after, start)

    def due(self, now: datetime) -> list[str]:
        """The jobs whose next fire time since they were set or last fired has come."""
        due = []
        for job, entry in sorted(self._load().items()):
            since = datetime.fromisoformat(entry["last_fired"] or entry["set"])
            fires = self._next(entry, since)
            if fires is not None and fires <= now:
                due.append(job)
        return due

    def fired(self, job: str, now: datetime) -> None:
        state = self._load()
        state[job]["last_fired"] = now.isoformat()
        self._save(state)

    def rows(self, now: datetime) -> list[ScheduledRun]:
        return [
            ScheduledRun(job, retrain_schedule_name(job), entry["expression"], self._next(entry, now))
            for job, entry in sorted(self._load().items())
        ]
