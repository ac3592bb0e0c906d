"""The FastAPI app: the SageMaker container routes (``sagemaker_api``) and the OpenAI-compatible routes
(``openai_api``) over one Engine, with the API key check and the error shape they share.

Every client error is a 4xx JSON body in OpenAI's shape, naming the field that was wrong.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trainforge.media.models import media_modality
from trainforge.serving.audio_api import media_router
from trainforge.serving.engine import Engine
from trainforge.serving.media_engine import MediaEngine
from trainforge.serving.openai_api import openai_router
from trainforge.serving.sagemaker_api import sagemaker_router


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "param": param, "code": None}}
    )


def create_app(engine: Engine | MediaEngine, api_key: str | None = None) -> FastAPI:
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
            getattr(exc, "param", None),
            kind="not_found_error" if exc.status_code == 404 else "invalid_request_error",
        )

    if isinstance(engine, MediaEngine):
        app.include_router(media_router(engine))
    else:
        app.include_router(sagemaker_router(engine))
        app.include_router(openai_router(engine))
    return app


def load_engine(model_dir: Path, name: str | None = None) -> Engine | MediaEngine:
    """The engine a model folder needs: a speech or image+text model's (``media/models.py`` decides), else
    the text engine."""
    if media_modality(model_dir) is not None:
        return MediaEngine(model_dir, name=name)
    return Engine(model_dir, name=name)
