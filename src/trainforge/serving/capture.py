"""Captured traffic, in SageMaker's data capture format, written locally and read in both modes.

SageMaker writes one JSON line per captured request to
``DESTINATION/ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl``::

    {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                       "data": "{...}", "encoding": "JSON"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-12-01T10:30:00Z"}, "eventVersion": "0"}

JSON bodies are kept as text (the endpoint configuration lists application/json as a JSON content type),
anything else base64 (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html).
The local server writes the same lines under ``WORKSPACE/deployments/NAME/capture/`` - opt-in, and with
every string of the request and the answer passed through the validator's PII redaction first (the
caller supplies it: the serving layer does not depend on the data layer). A production request and its
shadow copy share one eventId.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainforge.store import ObjectStore

JSON_TYPES = ("application/json",)

Redactor = Callable[[str], str]


def _redact_json(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_json(item, redact) for item in value]
    if isinstance(value, dict):
        return {key: _redact_json(item, redact) for key, item in value.items()}
    return value


def _payload(body: bytes, content_type: str, mode: str, redact: Redactor | None) -> dict[str, str]:
    kind = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if kind in JSON_TYPES:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            data = json.dumps(_redact_json(parsed, redact) if redact else parsed, ensure_ascii=False)
            return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": "JSON"}
    raw = redact(text).encode() if redact else body
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": base64.b64encode(raw).decode(),
        "encoding": "BASE64",
    }


def capture_line(
    request: bytes,
    request_type: str,
    response: bytes,
    response_type: str,
    *,
    event_id: str,
    when: datetime,
    redact: Redactor | None = None,
) -> dict[str, Any]:
    return {
        "captureData": {
            "endpointInput": _payload(request, request_type, "INPUT", redact),
            "endpointOutput": _payload(response, response_type, "OUTPUT", redact),
        },
        "eventMetadata": {"eventId": event_id, "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "eventVersion": "0",
    }


class CaptureWriter:
    """Appends captured exchanges, ``percent`` of requests, one file per variant and hour per process."""

    def __init__(
        self, root: Path, endpoint: str, percent: int, redact: Redactor | None, rng: random.Random | None = None
    ) -> None:
        self.root, self.endpoint, self.percent, self.redact = root, endpoint, percent, redact
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stamp = f"{datetime.now(UTC):%M-%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def sampled(self) -> bool:
        """One decision per client request (its shadow copy follows it)."""
        return self.percent > 0 and self.rng.random() * 100 < self.percent

    def path(self, variant: str, when: datetime) -> Path:
        return self.root / self.endpoint / variant / f"{when:%Y/%m/%d/%H}" / f"{self._stamp}.jsonl"

    def write(
        self, variant: str, request: bytes, request_type: str, response: bytes, response_type: str, event_id: str
    ) -> Path:
        when = datetime.now(UTC)
        line = capture_line(
            request, request_type, response, response_type, event_id=event_id, when=when, redact=self.redact
        )
        path = self.path(variant, when)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        return path


# --- reading captures back --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedExchange:
    """One captured request and its answer, decoded."""

    variant: str
    event_id: str
    time: str
    request: Any
    response: Any

    def messages(self) -> list[dict[str, str]] | None:
        """The conversation a chat request sent, or None for another kind of body."""
        messages = self.request.get("messages") if isinstance(self.request, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return None
        return [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in messages]

    def answer(self) -> str | None:
        """The text the endpoint answered: a chat completion's message, or an ``inputs`` body's
        generated_text; None for a failed or streamed answer."""
        if not isinstance(self.response, dict):
            return None
        if "generated_text" in self.response:
            return str(self.response["generated_text"])
        choices = self.response.get("choices") or []
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        return str(message["content"]) if isinstance(message, dict) and "content" in message else None


def _decode(payload: dict[str, str]) -> Any:
    text = payload["data"] if payload.get("encoding") == "JSON" else base64.b64decode(payload["data"]).decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_capture_line(line: str, variant: str) -> CapturedExchange:
    event = json.loads(line)
    data, metadata = event["captureData"], event.get("eventMetadata", {})
    return CapturedExchange(
        variant=variant,
        event_id=str(metadata.get("eventId", "")),
        time=str(metadata.get("inferenceTime", "")),
        request=_decode(data["endpointInput"]),
        response=_decode(data["endpointOutput"]) if "endpointOutput" in data else None,
    )


def read_captures(
    store: ObjectStore, endpoint_prefix: str, since: datetime | None = None
) -> Iterator[CapturedExchange]:
    """Every exchange under ``DESTINATION/ENDPOINT/`` (a file:// or s3:// URI), each with its variant (the
    first folder below the endpoint's); with ``since``, only the files of the hours (``VARIANT/yyyy/mm/dd/hh/``)
    from its hour on."""
    prefix = endpoint_prefix.rstrip("/") + "/"
    first_hour = f"{since.astimezone(UTC):%Y/%m/%d/%H}" if since else ""
    for info in store.list(prefix):
        if not info.uri.endswith(".jsonl"):
            continue
        variant, _, rest = info.uri[len(prefix) :].partition("/")
        if rest[:13] < first_hour:
            continue
        for line in store.read_bytes(info.uri).decode("utf-8").splitlines():
            if line.strip():
                yield parse_capture_line(line, variant)


def as_chat_records(exchanges: Iterator[CapturedExchange] | list[CapturedExchange]) -> list[dict[str, Any]]:
    """Answered chat exchanges as chat training records (the conversation plus the answer the endpoint
    gave): what the project's validator checks, and what retraining on captured traffic would read. An
    empty answer makes no record (the validator refuses an empty turn)."""
    records = []
    for exchange in exchanges:
        messages, answer = exchange.messages(), exchange.answer()
        if messages and answer is not None and answer.strip():
            records.append({"messages": [*messages, {"role": "assistant", "content": answer}]})
    return records
