"""EventBridge Scheduler schedules that start the retrain function for a job.

``trigger.on_new_data`` uses a one-time schedule as a debounce: every object that lands under a job's data
moves the job's schedule to ``quiet_minutes`` after it, so a multi-file upload starts one run, on all of
its files, once the uploads stop. Retrain then admits the newest data only if its content changed since
the last successful run (``handlers.handle_retrain``), which also makes a duplicate firing harmless.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from trainforge.settings import Settings


def new_data_schedule_name(job_name: str) -> str:
    """Job names are at most 40 characters; schedule names at most 64."""
    return f"{job_name}-new-data"


def debounce_new_data(
    job_name: str, quiet_minutes: int, settings: Settings, client: Any = None, now: datetime | None = None
) -> str:
    """Create or move the job's one-time schedule to ``quiet_minutes`` from now; returns its expression."""
    client = client or boto3.client("scheduler")
    fire_at = (now or datetime.now(UTC)) + timedelta(minutes=quiet_minutes)
    expression = f"at({fire_at.strftime('%Y-%m-%dT%H:%M:%S')})"
    request = {
        "Name": new_data_schedule_name(job_name),
        "GroupName": settings.schedule_group,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": settings.retrain_function_arn,
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps({"job": job_name}),
        },
        # a fired one-time schedule deletes itself, so the next upload creates a fresh one
        "ActionAfterCompletion": "DELETE",
        "Description": f"TrainForge: retrain {job_name} once new data has stopped arriving",
    }
    try:
        client.update_schedule(**request)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        try:
            client.create_schedule(**request)
        except ClientError as race:  # another upload's admission created it first: move that one
            if race.response["Error"]["Code"] != "ConflictException":
                raise
            client.update_schedule(**request)
    return expression
