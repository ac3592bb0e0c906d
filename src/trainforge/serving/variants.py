"""A local endpoint that serves several versions of a model at once, the way a SageMaker endpoint with
several variants does: ``trainforge serve --endpoint deployments/NAME.json``.

``VariantRouter`` is an ASGI app in front of one ``create_app`` per variant (each over its own Engine):

- a request naming a variant (``X-Amzn-SageMaker-Target-Variant``, what boto3's ``TargetVariant`` sends)
  goes to it, whatever its weight: that is how the parity check reaches a staged version;
- any other POST goes to a production variant drawn at random in proportion to the weights;
- each shadow variant receives a copy of ``weight`` percent of those requests, in the background; the
  client only ever sees the production answer;
- every answer says which variant gave it (``X-Amzn-Invoked-Production-Variant``, as SageMaker does) and
  which layout served it (``X-TrainForge-Layout``, the record's ``layout_key``);
- with capture on, requests and answers (shadow copies included) go to the capture in SageMaker's format;
  per-variant status, latency and tokens go to ``NAME/metrics/`` (one JSON line per request), summed up
  at ``GET /metrics``.

SIGHUP re-reads the record: the deployer changes weights, or adds and removes versions, without a
restart; versions already loaded are reused, and the new layout serves once every model is loaded.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainforge.serving.capture import CaptureWriter, Redactor
from trainforge.serving.rollout import EndpointRecord, Variant

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TARGET_HEADER = b"x-amzn-sagemaker-target-variant"
INVOKED_HEADER = b"x-amzn-invoked-production-variant"
LAYOUT_HEADER = b"x-trainforge-layout"


@dataclass(frozen=True)
class Layout:
    """The record being served and an app per variant name."""

    record: EndpointRecord
    apps: dict[str, ASGIApp]

    def production(self) -> list[Variant]:
        return [v for v in self.record.production() if v.name in self.apps]


def choose(variants: list[Variant], rng: random.Random) -> Variant:
    """A production variant drawn in proportion to the weights (all zero: the first)."""
    total = sum(v.weight for v in variants)
    if total <= 0:
        return variants[0]
    point = rng.random() * total
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


@dataclass
class VariantStats:
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def quantile(q: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None

        return {
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "latency_ms_p50": quantile(0.5),
            "latency_ms_p90": quantile(0.9),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.completion_tokens / self.seconds, 2) if self.seconds else None,
        }


class OpsLog:
    """Per-variant request outcomes: one JSON line per request under ``folder/yyyy/mm/dd/hh.jsonl`` (what
    continuous evaluation reads, as it reads CloudWatch's per-variant metrics in AWS) and running sums."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.stats: dict[str, VariantStats] = {}
        self._lock = threading.Lock()

    def record(self, variant: str, status: int, seconds: float, completion_tokens: int, shadow: bool) -> None:
        with self._lock:
            stats = self.stats.setdefault(variant, VariantStats())
            stats.requests += 1
            stats.client_errors += 400 <= status < 500
            stats.server_errors += status >= 500
            stats.completion_tokens += completion_tokens
            stats.seconds += seconds
            stats.latencies_ms = [*stats.latencies_ms[-9999:], seconds * 1000]
            if self.folder is not None:
                now = datetime.now(UTC)
                line = {
                    "variant": variant,
                    "shadow": shadow,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "completion_tokens": completion_tokens,
                    "time": now.isoformat(),
                }
                path = self.folder / f"{now:%Y/%m/%d/%H}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {name: stats.summary() for name, stats in sorted(self.stats.items())}


def _completion_tokens(body: bytes) -> int:
    try:
        usage = json.loads(body).get("usage") or {}
    except (ValueError, AttributeError):
        return 0
    return int(usage.get("completion_tokens") or 0)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class VariantRouter:
    def __init__(
        self,
        layout: Layout,
        *,
        capture: CaptureWriter | None = None,
        ops: OpsLog | None = None,
        rng: random.Random | None = None,
        api_key: str | None = None,
    ) -> None:
        self.layout = layout
        self.capture = capture
        self.ops = ops or OpsLog(None)
        self.rng = rng or random.Random()
        self.api_key = api_key
        self.background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        layout = self.layout  # one layout per request, whatever a reload does meanwhile
        stamp = [(LAYOUT_HEADER, layout.record.layout_key().encode())]
        if scope["type"] != "http":
            await layout.apps[layout.production()[0].name](scope, receive, send)
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            if not self._authorized(scope):
                await _json(send, 401, {"error": {"message": "missing or wrong API key"}}, stamp)
                return
            await _json(send, 200, {"endpoint": layout.record.name, "variants": self.ops.summary()}, stamp)
            return
        target = dict(scope.get("headers") or []).get(TARGET_HEADER, b"").decode()
        if target:
            variant = next((v for v in layout.record.variants if v.name == target and v.name in layout.apps), None)
            if variant is None:
                why = f"endpoint {layout.record.name} has no variant '{target}'; it serves {sorted(layout.apps)}"
                await _json(send, 400, {"error": {"message": why, "type": "invalid_request_error"}}, stamp)
                return
        elif scope["method"] == "POST":
            variant = choose(layout.production(), self.rng)
        else:
            variant = layout.production()[0]
        body = await _read_body(receive) if scope["method"] == "POST" else b""
        invocation = scope["method"] == "POST"
        event_id = str(uuid.uuid4())
        capture = invocation and self.capture is not None and self.capture.sampled()
        said = [(INVOKED_HEADER, variant.name.encode()), *stamp]

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or []), *said]}
            await send(message)

        outcome = await self._run(layout.apps[variant.name], scope, body, receive, stamped)
        if not invocation:
            return
        self._account(variant, scope, body, outcome, event_id, capture)
        if not target:
            for shadow in layout.record.shadows():
                if shadow.name in layout.apps and self.rng.random() * 100 < shadow.weight:
                    task = asyncio.create_task(
                        self._shadow(layout.apps[shadow.name], shadow, scope, body, event_id, capture)
                    )
                    self.background.add(task)
                    task.add_done_callback(self.background.discard)

    def _authorized(self, scope: Scope) -> bool:
        if not self.api_key:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        return secrets.compare_digest(header, f"Bearer {self.api_key}".encode())

    async def _run(
        self, app: ASGIApp, scope: Scope, body: bytes, after_body: Receive, deliver: Send | None
    ) -> tuple[int, bytes, str, float]:
        """One variant's app on the request (its body already read); each message of the answer goes to
        ``deliver`` (the client; None for a shadow copy). Returns status, body, content type and seconds
        (for the capture and the metrics)."""
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await after_body()

        status, chunks, content_type = 500, [], "application/json"

        async def relay(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers") or []).get(b"content-type", b"").decode() or content_type
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            if deliver is not None:
                await deliver(message)

        started = time.perf_counter()
        await app(scope, replay, relay)
        return status, b"".join(chunks), content_type, time.perf_counter() - started

    def _account(
        self,
        variant: Variant,
        scope: Scope,
        body: bytes,
        outcome: tuple[int, bytes, str, float],
        event_id: str,
        capture: bool,
    ) -> None:
        status, answer, answer_type, seconds = outcome
        self.ops.record(variant.name, status, seconds, _completion_tokens(answer), variant.shadow)
        if capture and self.capture is not None and status < 400:
            request_type = dict(scope.get("headers") or []).get(b"content-type", b"application/json").decode()
            self.capture.write(variant.name, body, request_type, answer, answer_type, event_id)

    async def _shadow(
        self, app: ASGIApp, variant: Variant, scope: Scope, body: bytes, event_id: str, capture: bool
    ) -> None:
        """The copy a shadow variant answers; nobody waits for it, and its answer goes only to the capture
        and the metrics."""
        copy = {**scope, "state": {}, "headers": [h for h in scope.get("headers") or [] if h[0] != TARGET_HEADER]}
        never = asyncio.Event()

        async def no_disconnect() -> Message:
            await never.wait()
            return {"type": "http.disconnect"}

        started = time.perf_counter()
        try:
            outcome = await self._run(app, copy, body, no_disconnect, None)
        except Exception:  # a failing shadow must never touch production traffic: it counts as a 500
            outcome = (500, b"", "application/json", time.perf_counter() - started)
        self._account(variant, copy, body, outcome, event_id, capture)

    async def drain(self) -> None:
        """Wait for every shadow copy still being answered (tests, shutdown)."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)


# --- the process -------------------------------------------------------------------------------------------


class LocalEndpoint:
    """The router of ``deployments/NAME.json``, its engines loaded once per model folder."""

    def __init__(self, record_path: Path, api_key: str | None, redact: Redactor | None) -> None:
        from trainforge.serving.app import create_app

        self.record_path = record_path
        self.api_key = api_key
        self.redact = redact
        self._apps: dict[str, ASGIApp] = {}
        self._create_app = create_app
        record = self.read()
        folder = record_path.parent / record.name
        self.router = VariantRouter(
            self.load(record),
            capture=CaptureWriter(folder / "capture", record.name, record.capture_percent, redact),
            ops=OpsLog(folder / "metrics"),
            api_key=api_key,
        )

    def read(self) -> EndpointRecord:
        return EndpointRecord.model_validate_json(self.record_path.read_text())

    def load(self, record: EndpointRecord) -> Layout:
        from trainforge.local.file_store import uri_to_path
        from trainforge.serving.app import load_engine

        apps = {}
        for variant in record.variants:
            if variant.model_uri not in self._apps:
                engine = load_engine(uri_to_path(variant.model_uri), name=record.name)
                self._apps[variant.model_uri] = self._create_app(engine, api_key=self.api_key)
            apps[variant.name] = self._apps[variant.model_uri]
        return Layout(record, apps)

    def reload(self) -> None:
        record = self.read()
        layout = self.load(record)
        if self.router.capture is not None:
            self.router.capture.percent = record.capture_percent
        self.router.layout = layout


def serve_endpoint(
    record_path: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    redact: Redactor | None = None,
) -> None:
    import uvicorn

    endpoint = LocalEndpoint(record_path, api_key, redact)
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=endpoint.reload, daemon=True).start())
    uvicorn.run(endpoint.router, host=host, port=port, log_level="warning", timeout_keep_alive=30)
