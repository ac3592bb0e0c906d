"""rollout: {"action": "promote" | "rollback", "endpoint": NAME} from `trainforge promote|rollback --aws PREFIX`
(see trainforge.pipeline.endpoint_handlers.handle_rollout)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.endpoint_handlers import handle_rollout
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="rollout")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_rollout(event, Settings())
    logger.info("rollout", extra={**event, **result})
    return result
