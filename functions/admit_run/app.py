"""admit_run: S3 "Object Created" under jobs/ or datasets/ -> idempotent StartExecution named by run id."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.handlers import admit_once
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="admit_run")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse(event=event, model=S3EventNotificationEventBridgeModel).detail
    result = admit_once(detail.bucket.name, detail.object.key, detail.object.version_id, Settings(), context)
    metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=len(result["started"]))
    logger.info("admitted", extra={"key": detail.object.key, **result})
    return result
