"""SageMaker's optimized Step Functions integrations for moto's state machine engine, which treats
"sagemaker" as unsupported (https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html):

- request-response: ``arn:aws:states:::sagemaker:createModel`` (and createEndpointConfig, createEndpoint,
  updateEndpoint, create*Job): the task's output is the API's response;
- ``.sync`` for createTrainingJob, createProcessingJob, createHyperParameterTuningJob, createTransformJob:
  the task waits until Describe* reports a terminal status; its output is that Describe* response (times
  as epoch milliseconds, as Step Functions renders them). A Failed or Stopped job fails the task with
  ``States.TaskFailed`` and the Describe* response as the cause. When the wait ends without a terminal
  status (the execution was stopped, the task timed out), the job is stopped (Stop*), as AWS does.

An API error fails the task with ``SageMaker.<Code>Exception`` for the errors SageMaker's API models
(ResourceLimitExceeded, ResourceInUse, ResourceNotFound, Conflict) and ``SageMaker.AmazonSageMakerException``
for the rest (ValidationException included), the cause in the SDK's "(Service: AmazonSageMaker; ...)" form.

``aws-sdk:sagemaker:*`` and ``aws-sdk:bedrock:*`` tasks reach the twin through boto3 like any other client.
Two gaps of moto's engine are closed for them: parameters and results are mapped between Step Functions'
PascalCase and the API's own names (bedrock's ``jobIdentifier``), and timestamps are rendered as ISO 8601
strings (moto could not serialize them at all).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError
from moto.core.utils import get_service_model
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
    PayloadBindingStringExpressionSimple,
)
from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadvaluelit.payload_value_str import (
    PayloadValueStr,
)
from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
    StringContextPath,
    StringExpressionSimple,
    StringIntrinsicFunction,
    StringJsonPath,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import IntrinsicParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.utils import camel_to_snake_case

from tests.twin.wire import Patches


class Job:
    """How ``.sync`` follows one kind of job: its Describe, name parameter, status field and Stop."""

    def __init__(self, noun: str, status: str | None = None) -> None:
        self.name = f"{noun}Name"
        self.status = status or f"{noun}Status"
        self.describe = f"describe_{camel_to_snake_case(noun)}"
        self.stop = f"stop_{camel_to_snake_case(noun)}"


SYNC_JOBS: Final[dict[str, Job]] = {
    "createtrainingjob": Job("TrainingJob"),
    "createprocessingjob": Job("ProcessingJob"),
    "createhyperparametertuningjob": Job("HyperParameterTuningJob"),
    "createtransformjob": Job("TransformJob"),
}
REQUEST_RESPONSE: Final[set[str]] = {
    "createmodel",
    "createendpointconfig",
    "createendpoint",
    "updateendpoint",
    *SYNC_JOBS,
}
TERMINAL_OK, RUNNING = "Completed", {"InProgress", "Stopping"}
MODELED_ERRORS = {"ResourceLimitExceeded", "ResourceInUse", "ResourceNotFound", "ConflictException"}


def dates_as(render: Callable[[datetime], Any], value: Any) -> Any:
    """``value`` with every datetime rendered (Step Functions passes JSON between states)."""
    if isinstance(value, datetime):
        return render(value)
    if isinstance(value, dict):
        return {key: dates_as(render, item) for key, item in value.items()}
    if isinstance(value, list):
        return [dates_as(render, item) for item in value]
    return value


def epoch_millis(value: Any) -> Any:
    return dates_as(lambda moment: int(moment.timestamp() * 1000), value)


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    def __init__(self) -> None:
        # WaitForTaskToken is listed only because moto's callback base class needs a callback endpoint for
        # every integration pattern (it calls interrupt_all() on it); such resources are refused below.
        super().__init__(supported_integration_patterns={ResourceCondition.Sync, ResourceCondition.WaitForTaskToken})

    def _get_supported_parameters(self) -> set[str] | None:
        action = self.resource.api_action.lower()
        if action not in REQUEST_RESPONSE:
            return None
        model = get_service_model("sagemaker")
        operation = next(name for name in model.operation_names if name.lower() == action)
        return set(model.operation_model(operation).input_shape.members)

    def _validate_service_integration_is_supported(self) -> None:
        super()._validate_service_integration_is_supported()
        condition, action = self.resource.condition, self.resource.api_action.lower()
        if condition is not None and (condition != ResourceCondition.Sync or action not in SYNC_JOBS):
            raise ValueError(f"{self.resource.resource_arn}: SageMaker supports .sync, for create*Job only")

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return boto_client_for(
            region=resource_runtime_part.region, service="sagemaker", state_credentials=state_credentials
        )

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        code = ex.response["Error"]["Code"]
        name = (
            f"SageMaker.{code.removesuffix('Exception')}Exception"
            if code in MODELED_ERRORS
            else "SageMaker.AmazonSageMakerException"
        )
        metadata = ex.response["ResponseMetadata"]
        cause = (
            f"{ex.response['Error']['Message']} (Service: AmazonSageMaker; Status Code: {metadata['HTTPStatusCode']}; "
            f"Error Code: {code}; Request ID: {metadata.get('RequestId', '')}; Proxy: null)"
        )
        details = TaskFailedEventDetails(
            error=name, cause=cause, resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type()
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(name),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=details),
        )

    def _eval_service_task(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        client = self._client(resource_runtime_part, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(epoch_millis(response))

    def _build_sync_resolver(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> Callable[[], Any]:
        env.stack.pop()  # the Create* response: .sync outputs the final Describe* instead
        job = SYNC_JOBS[self.resource.api_action.lower()]
        client = self._client(resource_runtime_part, state_credentials)
        name = normalised_parameters[job.name]
        self._stop_job = lambda: getattr(client, job.stop)(**{job.name: name})

        def resolve() -> Any:
            described = getattr(client, job.describe)(**{job.name: name})
            described.pop("ResponseMetadata", None)
            if described[job.status] in RUNNING:
                return None
            output = epoch_millis(described)
            if described[job.status] == TERMINAL_OK:
                return output
            details = TaskFailedEventDetails(
                error=StatesErrorNameType.StatesTaskFailed.to_name(),
                cause=to_json_str(output),
                resource=self._get_sfn_resource(),
                resourceType=self._get_sfn_resource_type(),
            )
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(taskFailedEventDetails=details),
                )
            )

        return resolve

    def _eval_sync(
        self, env: Any, sync_resolver: Any, timeout_seconds: Any, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        outcome = super()._eval_sync(env, sync_resolver, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        if outcome is None:  # the wait ended without a terminal status: the execution was stopped or timed out
            with contextlib.suppress(ClientError):  # it ended meanwhile
                self._stop_job()
        return outcome


def install(patches: Patches) -> None:
    """Route ``arn:aws:states:::sagemaker:*`` to the class above where moto's task factory looks it up, and
    make ``aws-sdk:*`` tasks map names and timestamps as Step Functions does."""
    original = state_task_factory.state_task_service_for

    def state_task_service_for(service_name: str) -> Any:
        return StateTaskServiceSageMaker() if service_name == "sagemaker" else original(service_name)

    patches.set(state_task_factory, "state_task_service_for", state_task_service_for)
    sdk_task = StateTaskServiceAwsSdk._eval_service_task

    def eval_service_task(
        self: StateTaskServiceAwsSdk,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict,
        state_credentials: Any,
    ) -> None:
        """Step Functions names aws-sdk parameters and results in PascalCase whatever the API's own case
        (bedrock: jobIdentifier <-> JobIdentifier); moto's port of the engine skips both mappings."""
        model = get_service_model(self._get_boto_service_name())
        operation = model.operation_model(
            next(name for name in model.operation_names if camel_to_snake_case(name) == self._get_boto_service_action())
        )
        self._to_boto_request(normalised_parameters, operation.input_shape)
        sdk_task(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        response = dates_as(datetime.isoformat, env.stack.pop())
        self._from_boto_response(response, operation.output_shape)
        env.stack.append(response)

    patches.set(StateTaskServiceAwsSdk, "_eval_service_task", eval_service_task)


def _sampled(value: str) -> StringExpressionSimple:
    """A ``.$`` binding's value as the engine samples it: a context path, an intrinsic function, a path."""
    if value.startswith("$$"):
        return StringContextPath(context_object_path=value)
    if value.startswith("States."):
        function, _ = IntrinsicParser.parse(value)
        return StringIntrinsicFunction(intrinsic_function_derivation=value, function=function)
    return StringJsonPath(json_path=value)


def install_keyword_bindings(patches: Patches) -> None:
    """Payload keys that are also ASL keywords, bound as paths: moto's grammar (LocalStack's) lexes
    ``"RoleArn.$"`` as the Credentials keyword and then keeps it in Parameters as a literal key named
    ``RoleArn.$``, so CreateTrainingJob would go out without its RoleArn. Step Functions binds any key
    that ends in ``.$`` (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html)."""
    original = Preprocessor.visitPayload_binding_value

    def visit(self: Preprocessor, ctx: Any) -> Any:
        binding = original(self, ctx)
        if binding.field.endswith(".$") and isinstance(binding.payload_value, PayloadValueStr):
            return PayloadBindingStringExpressionSimple(binding.field[:-2], _sampled(binding.payload_value.val))
        return binding

    patches.set(Preprocessor, "visitPayload_binding_value", visit)
