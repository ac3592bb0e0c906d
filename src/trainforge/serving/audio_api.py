"""The routes of a speech or image+text model, over one MediaEngine:

    POST /v1/audio/transcriptions   multipart (file, model, language, response_format), as the OpenAI SDK
                                    sends it; answers {"text": ...}, plain text, or verbose_json
    POST /v1/chat/completions       OpenAI chat with ``image_url`` parts (data URIs) for image+text models
    GET  /v1/models, GET /ping
    POST /invocations               SageMaker: {"audio": BASE64, "language": ...} -> {"text": ...} for speech,
                                    a chat body -> a chat completion for image+text

A bad upload or image is a 400 naming the form field or the message part (``error.param``); one over the
audio limit (``MediaLimits.max_audio_bytes``) a 413: a multipart file before it is read, base64 audio (whose
JSON body FastAPI has already parsed) before it is decoded. A transcription request without ``language`` is decoded in the model's default language, the one
it was tuned on (``media/generation.default_language``).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException

from trainforge.media.generation import SPEECH_TASK, UnsupportedLanguage, default_language
from trainforge.media.headers import MediaError
from trainforge.media.limits import base64_chars
from trainforge.serving.media_engine import MediaEngine
from trainforge.serving.schemas import BadRequest

DEFAULT_MAX_TOKENS = 128
#: the transcription formats answered; srt and vtt need timestamps, which the decoder prompt turns off
RESPONSE_FORMATS = ("json", "text", "verbose_json")


def _transcription(engine: MediaEngine, audio: bytes, language: str | None, response_format: str, param: str) -> Any:
    if engine.modality != "speech":
        raise BadRequest("model", f"model '{engine.name}' is not a speech model: it has no transcriptions")
    if response_format not in RESPONSE_FORMATS:
        raise BadRequest("response_format", f"response_format: one of {', '.join(RESPONSE_FORMATS)}")
    try:
        text, seconds = engine.transcribe(audio, language)
    except MediaError as exc:
        raise BadRequest(param, f"{param}: {exc}") from exc
    except UnsupportedLanguage as exc:
        raise BadRequest("language", str(exc)) from exc
    if response_format == "text":
        return PlainTextResponse(text)
    if response_format == "verbose_json":
        language = language or default_language(engine.model)  # what transcribe decoded in
        return {"task": SPEECH_TASK, "language": language, "duration": seconds, "text": text, "segments": []}
    return {"text": text}


def _chat(engine: MediaEngine, body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages", "messages: a non-empty list of messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise BadRequest(f"messages.{index}.role", f"messages[{index}].role: system, user or assistant")
        if not isinstance(message.get("content"), (str, list)):
            raise BadRequest(f"messages.{index}.content", f"messages[{index}].content: a string or a list of parts")
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if not isinstance(limit, int) or not 1 <= limit <= 4096:
        raise BadRequest("max_tokens", "max_tokens: an integer between 1 and 4096")
    try:
        text = engine.chat(messages, limit)
    except ValueError as exc:
        param = str(exc).split(":", 1)[0]
        raise BadRequest(param, str(exc)) from exc
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": engine.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def media_router(engine: MediaEngine) -> APIRouter:
    router = APIRouter()

    def check_model(requested: str | None) -> None:
        if requested not in (None, "", engine.name):
            raise HTTPException(404, f"model '{requested}' is not served here; GET /v1/models lists '{engine.name}'")

    @router.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "healthy", "model": engine.name}

    @router.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": engine.name, "object": "model", "created": engine.created, "owned_by": "trainforge"}],
        }

    @router.post("/v1/audio/transcriptions", response_model=None)
    async def transcriptions(
        file: UploadFile = File(...),
        model: str | None = Form(None),
        language: str | None = Form(None),
        response_format: str = Form("json"),
    ) -> Any:
        check_model(model)
        if file.size is not None and file.size > engine.limits.max_audio_bytes:  # refused before it is read
            raise BadRequest("file", f"file: {file.size} bytes is over {engine.limits.max_audio_bytes}", 413)
        return _transcription(engine, await file.read(), language, response_format, "file")

    @router.post("/v1/chat/completions", response_model=None)
    def chat_completions(body: dict[str, Any] = Body(...)) -> Any:
        check_model(body.get("model"))
        if engine.modality != "vision-text":
            raise BadRequest("model", f"model '{engine.name}' transcribes speech: POST /v1/audio/transcriptions")
        return _chat(engine, body)

    @router.post("/invocations", response_model=None)
    def invocations(body: dict[str, Any] = Body(...)) -> Any:
        if "messages" in body:
            return _chat(engine, body)
        audio = body.get("audio")
        if not isinstance(audio, str):
            raise BadRequest("audio", "audio: the file's bytes in base64 (or send messages to an image+text model)")
        payload = audio.split(",", 1)[-1] if audio.startswith("data:") else audio
        limit = engine.limits.max_audio_bytes  # the multipart upload's limit
        if len(payload) > base64_chars(limit):  # refused before it is decoded
            raise BadRequest("audio", f"audio: {len(payload)} base64 characters hold over {limit} bytes", 413)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("audio", f"audio: not valid base64: {exc}") from exc
        return _transcription(engine, data, body.get("language"), "json", "audio")

    return router
