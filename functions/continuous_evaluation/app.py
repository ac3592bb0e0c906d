"""continuous_evaluation: {"endpoint": NAME} from the spec's deploy.continuous_evaluation schedule -> the job
that re-scores the endpoint's champion and challenger, started as a processing job
(see trainforge.pipeline.continuous_handlers.handle_start)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.continuous_handlers import handle_start
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="continuous_evaluation")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_start(event, Settings())
    logger.info("continuous evaluation started", extra=result)
    return result
