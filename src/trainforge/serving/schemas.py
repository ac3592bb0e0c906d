"""Request bodies of the OpenAI-compatible routes and of /invocations; unknown fields are tolerated where
OpenAI clients send extras (user, logprobs: false, ...), required fields are checked and named in 400s."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException


class BadRequest(HTTPException):
    """A 400 (413 for a field over its size limit) naming the field at fault (OpenAI's ``error.param``)."""

    def __init__(self, param: str | None, message: str, status: int = 400) -> None:
        super().__init__(status, message)
        self.param = param


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    #: each answer token with its log-probability (OpenAI's ``choices[].logprobs.content``); not streamed
    logprobs: bool = False


class CompletionRequest(SamplingFields):
    prompt: str | list[str]


class InvocationRequest(BaseModel):
    """The SageMaker /invocations text body, in LMI's schema: ``{"inputs": ..., "parameters": {...}}`` (a
    ``messages`` body is a ChatCompletionRequest)."""

    model_config = ConfigDict(extra="ignore")
    inputs: str | None = None
    parameters: dict[str, float | int | str | list[str] | bool] = Field(default_factory=dict)
