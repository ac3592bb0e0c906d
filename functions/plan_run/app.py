"""plan_run: the state machine's Plan step: time, cost, memory, deployability and quotas before any compute;
a run that cannot succeed is refused here (see trainforge.pipeline.plan_step.handle_plan)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainforge.pipeline.plan_step import handle_plan
from trainforge.settings import Settings

logger = Logger(service="trainforge")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=(event.get("run") or {}).get("run_id"))
    return handle_plan(event, Settings())
