"""retrain: EventBridge Scheduler target {"job": NAME} -> a run on the newest data, only if it changed."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.handlers import handle_retrain
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="retrain")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_retrain(str(event["job"]), Settings())
    logger.info("retrain", extra={"job": event["job"], **result})
    return result
