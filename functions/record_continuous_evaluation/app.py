"""record_continuous_evaluation: SageMaker "Processing Job State Change" of a continuous evaluation job -> its
outcome beside the endpoint's record, its figures on the model packages, a failed challenger rolled back if
the spec asks (see trainforge.pipeline.continuous_handlers.handle_record)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.continuous_handlers import handle_record
from trainforge.settings import Settings

logger = Logger(service="trainforge")
metrics = Metrics(namespace="TrainForge", service="record_continuous_evaluation")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_record(event, Settings())
    logger.info("continuous evaluation recorded", extra=result)
    return result
