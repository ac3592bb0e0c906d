"""validate_shard: one item of the Validate map: one shard of the run's data -> its partial report
(see trainforge.pipeline.validation_fanout)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.validation_fanout import handle_shard
from trainforge.settings import Settings

logger = Logger(service="trainforge")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"), shard=event.get("shard"))
    return handle_shard(event, Settings())
