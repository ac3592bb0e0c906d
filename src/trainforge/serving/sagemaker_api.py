"""The SageMaker inference container's routes, over one Engine.

    GET  /ping                              health check (SageMaker waits for 200 before routing traffic)
    POST /invocations                       the container contract
    POST /endpoints/{name}/invocations      what boto3 ``sagemaker-runtime`` sends to a local endpoint_url

A body is answered in the schema of AWS's LMI container, the engine SageMaker endpoints default to: a
``messages`` body is an OpenAI chat completion request and gets a chat completion back; an ``inputs`` body
(``{"inputs": ..., "parameters": {"max_new_tokens": ...}}``) gets ``{"generated_text": ...}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from trainforge.serving.engine import Engine, GenerationParams
from trainforge.serving.openai_api import DEFAULT_MAX_TOKENS, chat_completion
from trainforge.serving.schemas import BadRequest, ChatCompletionRequest, InvocationRequest


def _validated(model: type[Any], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:  # the app's handler turns it into a 400 naming the field
        raise RequestValidationError(exc.errors()) from exc


def invoke(engine: Engine, body: dict[str, Any]) -> Any:
    if "messages" in body:
        return chat_completion(engine, _validated(ChatCompletionRequest, body))
    request: InvocationRequest = _validated(InvocationRequest, body)
    if not request.inputs:
        raise BadRequest("inputs", "provide 'inputs' (text) or 'messages' (chat)")
    p = request.parameters
    try:
        stop = p.get("stop", ())
        params = GenerationParams(
            max_new_tokens=int(p.get("max_new_tokens", DEFAULT_MAX_TOKENS)),  # type: ignore[arg-type]
            temperature=float(p.get("temperature", 0.0)),  # type: ignore[arg-type]
            top_p=float(p.get("top_p", 1.0)),  # type: ignore[arg-type]
            stop=(stop,) if isinstance(stop, str) else tuple(stop),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError) as exc:
        raise BadRequest("parameters", f"parameters: {exc}") from exc
    if not 1 <= params.max_new_tokens <= 4096:
        raise BadRequest("parameters.max_new_tokens", "parameters.max_new_tokens: must be between 1 and 4096")
    result = engine.generate(request.inputs, params)
    return {
        "generated_text": result.text,
        "finish_reason": result.finish_reason,
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
    }


def sagemaker_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "healthy", "model": engine.name}

    @router.post("/invocations", response_model=None)
    def invocations(body: dict[str, Any] = Body(...)) -> Any:
        return invoke(engine, body)

    @router.post("/endpoints/{name}/invocations", response_model=None)
    def endpoint_invocations(name: str, body: dict[str, Any] = Body(...)) -> Any:
        if name != engine.name:
            raise HTTPException(404, f"endpoint '{name}' not found; this server serves '{engine.name}'")
        return invoke(engine, body)

    return router
