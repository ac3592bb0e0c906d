"""Where the twin meets moto: every request moto serves passes through ``BaseResponse.call_action``, with
the exact wire request (JSON body, or REST path + headers + body) in hand. The twin hooks there to hold
requests to the rules, and adds or replaces actions on moto's response classes (``Patches``), all undone
on uninstall.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.request import determine_request_protocol
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import get_service_model

_MISSING = object()


class ValidationException(ServiceException):
    """How AWS refuses a request that breaks a documented constraint (HTTP 400)."""

    code = "ValidationException"


@dataclass(frozen=True)
class WireRequest:
    service: str  # botocore's name: sagemaker, sagemaker-runtime, bedrock, stepfunctions, scheduler, sns
    operation: str  # CreateTrainingJob
    api: str  # the IAM action: signing name + operation, e.g. sagemaker:InvokeEndpoint, states:StartExecution
    body: dict[str, Any]  # the request as the client sent it, in the API's own member names
    account: str
    region: str


def decode(response: BaseResponse) -> WireRequest:
    """The request as AWS receives it: the JSON body verbatim for JSON services, otherwise the input
    members as the API model places them in the path, query, headers and body."""
    service = response.boto3_service_name
    model = get_service_model(service)
    operation = response._get_action()
    request = response.normalized_request
    if model.protocol == "json":
        body = json.loads(response.body or "{}")
    else:
        parser = PROTOCOL_PARSERS[determine_request_protocol(model, request.content_type)]
        parsed = parser(model.operation_model(operation), map_type=dict).parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": request.data,
                "url_path": request.path,
                "url_params": response.uri_match,
            }
        )
        body = dict(parsed)
    api = f"{model.signing_name}:{operation}"
    return WireRequest(service, operation, api, body, response.current_account, response.region)


def refuse(response: BaseResponse, error: ServiceException) -> Any:
    """Answer with ``error`` serialized in the service's protocol, as moto answers its own errors."""
    return response.serialized(ActionResult(error))


class Patches:
    """setattr with memory: ``undo`` restores every attribute exactly (deleting the ones that were added)."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._saved:
            owner, name, value = self._saved.pop()
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def intercept(patches: Patches, services: set[str], check: Callable[[WireRequest], list[str]]) -> None:
    """Every request to ``services`` goes to ``check`` first; violations are refused as AWS refuses them."""
    original = BaseResponse.call_action

    def call_action(self: BaseResponse) -> Any:
        if self.boto3_service_name not in services or not self._get_action():
            return original(self)
        violations = check(decode(self))
        if violations:
            count = len(violations)
            message = f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(violations)
            return refuse(self, ValidationException(message))
        return original(self)

    patches.set(BaseResponse, "call_action", call_action)
