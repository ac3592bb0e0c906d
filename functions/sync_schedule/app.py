"""sync_schedule: S3 "Object Created" or "Object Deleted" under jobs/ -> the job's retraining schedule follows
its current spec (see trainforge.pipeline.schedules.reconcile_schedule)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.schedules import reconcile_schedule
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="sync_schedule")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    detail = parse(event=event, model=S3EventNotificationEventBridgeModel).detail
    result = reconcile_schedule(f"s3://{detail.bucket.name}", detail.object.key, Settings())
    logger.info("schedule", extra={"key": detail.object.key, "event": event.get("detail-type"), **result})
    return result
