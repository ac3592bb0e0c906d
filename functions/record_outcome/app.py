"""record_outcome: a run that succeeded or that the gate rejected -> runs/RUN_ID/outcome.json and the message."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.handlers import handle_record_outcome
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="record_outcome")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = handle_record_outcome(event, Settings())
    metrics.add_metric(
        name="RunsSucceeded" if outcome["status"] == "succeeded" else "RunsRejected", unit=MetricUnit.Count, value=1
    )
    logger.info("run ended", extra={"status": outcome["status"]})
    return outcome
