"""record_failure: any caught failure -> runs/RUN_ID/failure.json with state, error, cause, logs, hint."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.handlers import handle_record_failure
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="record_failure")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failure = handle_record_failure(event, Settings())
    metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    logger.warning(
        "run failed", extra={"run_id": failure["run_id"], "state": failure["state"], "error": failure["error"]}
    )
    return failure
