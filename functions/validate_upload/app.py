"""validate_upload: S3 "Object Created" (via EventBridge) -> validate the object -> report in artifacts."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.upload import validate_upload
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="validate_upload")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse(event=event, model=S3EventNotificationEventBridgeModel).detail
    report = validate_upload(f"s3://{detail.bucket.name}", detail.object.key, detail.object.version_id, Settings())
    metrics.add_metric(name="UploadsAccepted" if report.ok else "UploadsRejected", unit=MetricUnit.Count, value=1)
    # counts and locations only: never a row of the user's data in the logs
    logger.info("validated", extra={"key": detail.object.key, "ok": report.ok, "report_uri": report.report_uri})
    return report.model_dump(mode="json")
