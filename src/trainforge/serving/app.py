"""The FastAPI app: SageMaker container routes and OpenAI-compatible routes over one Engine.

    GET  /ping                              SageMaker health check
    POST /invocations                       SageMaker container contract (JSON in, JSON out)
    POST /endpoints/{name}/invocations      what boto3 ``sagemaker-runtime`` sends (local endpoint_url)
    GET  /v1/models                         OpenAI
    POST /v1/chat/completions               OpenAI, ``stream: true`` as server-sent events
    POST /v1/completions                    OpenAI

Every client error is a 4xx JSON body in OpenAI's shape, naming the field that was wrong.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from trainforge.serving.engine import Engine, GenerationParams
from trainforge.serving.schemas import ChatCompletionRequest, CompletionRequest, InvocationRequest, SamplingFields

DEFAULT_MAX_TOKENS = 128


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "param": param, "code": None}}
    )


def _params(body: SamplingFields) -> GenerationParams:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    limit = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
    return GenerationParams(
        max_new_tokens=limit, temperature=body.temperature, top_p=body.top_p, stop=stop, seed=body.seed
    )


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def create_app(engine: Engine, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="TrainForge model server", version="1")

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path != "/ping":
            header = request.headers.get("authorization", "")
            if not secrets.compare_digest(header.encode(), f"Bearer {api_key}".encode()):
                return _error(
                    401, "missing or wrong API key: send Authorization: Bearer <key>", kind="authentication_error"
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        if first.get("type") == "json_invalid":
            return _error(400, f"request body is not valid JSON: {first.get('msg')}", None)
        param = ".".join(location) or None
        return _error(400, f"{param or 'body'}: {first.get('msg')}", param)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(
            exc.status_code,
            str(exc.detail),
            kind="not_found_error" if exc.status_code == 404 else "invalid_request_error",
        )

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "healthy", "model": engine.name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": engine.name, "object": "model", "created": engine.created, "owned_by": "trainforge"}],
        }

    def _check_model(requested: str | None) -> None:
        if requested not in (None, "", engine.name):
            raise HTTPException(404, f"model '{requested}' is not served here; GET /v1/models lists '{engine.name}'")

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(body: ChatCompletionRequest) -> Any:
        _check_model(body.model)
        prompt = engine.render_chat([m.model_dump() for m in body.messages])
        params = _params(body)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:

            def events() -> Iterator[str]:
                base = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": engine.name,
                }
                yield _sse(
                    {
                        **base,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                    }
                )
                for delta in engine.stream(prompt, params):
                    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]})
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield _sse("[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream")
        result = engine.generate(prompt, params)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": engine.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }

    @app.post("/v1/completions", response_model=None)
    def completions(body: CompletionRequest) -> Any:
        _check_model(body.model)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            return _error(400, "prompt: must not be empty", "prompt")
        params = _params(body)
        completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:

            def events() -> Iterator[str]:
                for index, prompt in enumerate(prompts):
                    for delta in engine.stream(prompt, params):
                        yield _sse(
                            {
                                "id": completion_id,
                                "object": "text_completion",
                                "created": created,
                                "model": engine.name,
                                "choices": [{"index": index, "text": delta, "finish_reason": None}],
                            }
                        )
                yield _sse("[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream")
        results = [engine.generate(prompt, params) for prompt in prompts]
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": engine.name,
            "choices": [
                {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
                for i, r in enumerate(results)
            ],
            "usage": {
                "prompt_tokens": sum(r.prompt_tokens for r in results),
                "completion_tokens": sum(r.completion_tokens for r in results),
                "total_tokens": sum(r.prompt_tokens + r.completion_tokens for r in results),
            },
        }

    def invoke(body: InvocationRequest) -> Any:
        if body.messages:
            prompt = engine.render_chat([m.model_dump() for m in body.messages])
        elif body.inputs:
            prompt = body.inputs
        else:
            return _error(400, "provide 'inputs' (text) or 'messages' (chat)", "inputs")
        p = body.parameters
        try:
            stop = p.get("stop", ())
            params = GenerationParams(
                max_new_tokens=int(p.get("max_new_tokens", DEFAULT_MAX_TOKENS)),  # type: ignore[arg-type]
                temperature=float(p.get("temperature", 0.0)),  # type: ignore[arg-type]
                top_p=float(p.get("top_p", 1.0)),  # type: ignore[arg-type]
                stop=(stop,) if isinstance(stop, str) else tuple(stop),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            return _error(400, f"parameters: {exc}", "parameters")
        if not 1 <= params.max_new_tokens <= 4096:
            return _error(400, "parameters.max_new_tokens: must be between 1 and 4096", "parameters.max_new_tokens")
        result = engine.generate(prompt, params)
        return {
            "generated_text": result.text,
            "finish_reason": result.finish_reason,
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
        }

    @app.post("/invocations", response_model=None)
    def invocations(body: InvocationRequest) -> Any:
        return invoke(body)

    @app.post("/endpoints/{name}/invocations", response_model=None)
    def endpoint_invocations(name: str, body: InvocationRequest) -> Any:
        if name != engine.name:
            raise HTTPException(404, f"endpoint '{name}' not found; this server serves '{engine.name}'")
        return invoke(body)

    return app
