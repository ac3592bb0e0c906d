"""merge_validation: the Validate map's reduce: the shards' partial reports -> the run's DatasetReport
(see trainforge.pipeline.validation_fanout)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.validation_fanout import handle_merge
from trainforge.settings import Settings

logger = Logger(service="trainforge")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=(event.get("run") or {}).get("run_id"))
    return handle_merge(event, Settings())
