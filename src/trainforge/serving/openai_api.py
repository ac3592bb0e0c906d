"""The OpenAI-compatible routes, over one Engine: what the OpenAI SDK and its ecosystem call.

    GET  /v1/models
    POST /v1/chat/completions      ``stream: true`` as server-sent events
    POST /v1/completions

``chat_completion`` is also what SageMaker's ``/invocations`` answers a chat body with, as AWS's LMI
container does, so a client can switch between the two engines without changing a line.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from trainforge.serving.engine import Engine, Generation, GenerationParams
from trainforge.serving.schemas import BadRequest, ChatCompletionRequest, CompletionRequest, SamplingFields

DEFAULT_MAX_TOKENS = 128


def params_of(body: SamplingFields, logprobs: bool = False) -> GenerationParams:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    limit = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
    return GenerationParams(
        max_new_tokens=limit,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        seed=body.seed,
        logprobs=logprobs,
    )


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _usage(results: list[Generation]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Envelope:
    """The fields every response and chunk of one completion repeats."""

    def __init__(self, kind: str, prefix: str, model: str) -> None:
        self.fields = {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": model,
        }

    def __call__(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.fields, "choices": choices, **extra}


def chat_completion(engine: Engine, body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
    prompt = engine.render_chat([m.model_dump() for m in body.messages])
    params = params_of(body, logprobs=body.logprobs and not body.stream)
    if body.stream:
        chunk = _Envelope("chat.completion.chunk", "chatcmpl", engine.name)

        def events() -> Iterator[str]:
            yield _sse(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
            for delta in engine.stream(prompt, params):
                yield _sse(chunk([{"index": 0, "delta": {"content": delta}, "finish_reason": None}]))
            yield _sse(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")
    result = engine.generate(prompt, params)
    message = {"role": "assistant", "content": result.text}
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": result.finish_reason}
    if result.logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode()), "top_logprobs": []}
                for t in result.logprobs
            ]
        }
    return _Envelope("chat.completion", "chatcmpl", engine.name)([choice], usage=_usage([result]))


def text_completion(engine: Engine, body: CompletionRequest) -> dict[str, Any] | StreamingResponse:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts:
        raise BadRequest("prompt", "prompt: must not be empty")
    params = params_of(body)
    envelope = _Envelope("text_completion", "cmpl", engine.name)
    if body.stream:

        def events() -> Iterator[str]:
            for index, prompt in enumerate(prompts):
                for delta in engine.stream(prompt, params):
                    yield _sse(envelope([{"index": index, "text": delta, "finish_reason": None}]))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")
    results = [engine.generate(prompt, params) for prompt in prompts]
    choices = [
        {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None} for i, r in enumerate(results)
    ]
    return envelope(choices, usage=_usage(results))


def openai_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    def check_model(requested: str | None) -> None:
        if requested not in (None, "", engine.name):
            raise HTTPException(404, f"model '{requested}' is not served here; GET /v1/models lists '{engine.name}'")

    @router.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": engine.name, "object": "model", "created": engine.created, "owned_by": "trainforge"}],
        }

    @router.post("/v1/chat/completions", response_model=None)
    def chat_completions(body: ChatCompletionRequest) -> Any:
        check_model(body.model)
        return chat_completion(engine, body)

    @router.post("/v1/completions", response_model=None)
    def completions(body: CompletionRequest) -> Any:
        check_model(body.model)
        return text_completion(engine, body)

    return router
