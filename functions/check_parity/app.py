"""check_parity: the state machine's CheckParity step (see trainforge.pipeline.endpoint_handlers)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.endpoint_handlers import handle_check_parity
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="check_parity")


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=(event.get("run") or {}).get("run_id"))
    return handle_check_parity(event, Settings())
