"""The local endpoint serving several versions: weighted splits, requests by variant name, shadow copies
whose answers no client sees, and the capture in SageMaker's format, PII redacted, that the project's
validator accepts once turned into chat records."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from trainforge.serving.capture import CaptureWriter, as_chat_records, read_captures
from trainforge.serving.rollout import EndpointRecord, Variant
from trainforge.serving.variants import Layout, OpsLog, VariantRouter


def variant(n: int, weight: int, shadow: bool = False) -> Variant:
    return Variant(
        name=f"v{n}", version=str(n), run_id=f"r{n}", model_uri=f"file:///m{n}", weight=weight, shadow=shadow
    )


def labelled(name: str) -> FastAPI:
    """A stand-in variant that only says who it is: the split is the router's, whatever answers."""
    app = FastAPI()

    @app.post("/invocations")
    def invocations() -> dict[str, str]:
        return {"variant": name}

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "healthy"}

    return app


def router_over(*variants: Variant, seed: int = 7, **kwargs) -> VariantRouter:
    record = EndpointRecord(name="support", variants=variants)
    layout = Layout(record, {v.name: labelled(v.name) for v in variants})
    return VariantRouter(layout, rng=random.Random(seed), **kwargs)


def test_a_90_10_split_over_1000_requests_lands_within_3_percent():
    router = router_over(variant(1, 90), variant(2, 10))
    with TestClient(router) as client:
        answers = [client.post("/invocations", json={"inputs": "hi"}) for _ in range(1000)]
    counted = Counter(a.json()["variant"] for a in answers)
    assert abs(counted["v1"] / 1000 - 0.9) <= 0.03 and abs(counted["v2"] / 1000 - 0.1) <= 0.03
    # every answer names the variant that gave it, as SageMaker's x-Amzn-Invoked-Production-Variant does
    assert all(a.headers["x-amzn-invoked-production-variant"] == a.json()["variant"] for a in answers)
    assert {a.headers["x-trainforge-layout"] for a in answers} == {router.layout.record.layout_key()}
    assert router.ops.summary()["v1"]["requests"] == counted["v1"]


def test_a_named_variant_answers_whatever_its_weight():
    router = router_over(variant(1, 100), variant(2, 0))
    with TestClient(router) as client:
        untargeted = {client.post("/invocations", json={}).json()["variant"] for _ in range(50)}
        targeted = client.post("/invocations", json={}, headers={"X-Amzn-SageMaker-Target-Variant": "v2"})
        unknown = client.post("/invocations", json={}, headers={"X-Amzn-SageMaker-Target-Variant": "v9"})
    assert untargeted == {"v1"} and targeted.json() == {"variant": "v2"}
    assert unknown.status_code == 400 and "no variant 'v9'" in unknown.json()["error"]["message"]


@pytest.fixture(scope="module")
def two_models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two versions that answer differently: one always says ' france', the other ' you'."""
    from tests.taught import saying

    folder = tmp_path_factory.mktemp("versions")
    return saying(tiny_model_dir, folder / "france", " france"), saying(tiny_model_dir, folder / "you", " you")


def test_shadow_mirrors_every_request_and_clients_never_see_its_answers(two_models, tmp_path):
    """Production v1 and shadow v2 (another model) with capture on: every request is answered by v1 alone,
    every one is copied to v2, and both answers are captured under one eventId, redacted."""
    from trainforge.data import ValidationOptions, validate_dataset
    from trainforge.data.pii import find_pii, redact
    from trainforge.serving.app import create_app
    from trainforge.serving.engine import Engine
    from trainforge.store import open_store

    engines = {name: Engine(folder, name="support") for name, folder in zip(("v1", "v2"), two_models, strict=True)}
    record = EndpointRecord(
        name="support", variants=(variant(1, 100), variant(2, 100, shadow=True)), capture_percent=100
    )
    capture = CaptureWriter(
        tmp_path / "capture", "support", 100, lambda text: redact(text, find_pii(text)), random.Random(0)
    )
    router = VariantRouter(
        Layout(record, {name: create_app(engine) for name, engine in engines.items()}),
        capture=capture,
        ops=OpsLog(tmp_path / "metrics"),
        rng=random.Random(0),
    )
    prompts = [f"hello how are you {i}, mail me at user{i}@example.com" for i in range(6)]
    with TestClient(router) as client:
        answers = [
            client.post("/invocations", json={"messages": [{"role": "user", "content": p}], "max_tokens": 6})
            for p in prompts
        ]
        client.portal.call(router.drain)
    # every client got the production version's answer, never the shadow's
    assert all(a.json()["choices"][0]["message"]["content"].split() == ["france"] * 6 for a in answers)
    assert {a.headers["x-amzn-invoked-production-variant"] for a in answers} == {"v1"}
    summary = router.ops.summary()
    assert summary["v1"]["requests"] == summary["v2"]["requests"] == len(prompts)

    exchanges = list(read_captures(open_store(capture.root.as_uri()), (capture.root / "support").as_uri()))
    by_variant = Counter(e.variant for e in exchanges)
    assert by_variant == {"v1": len(prompts), "v2": len(prompts)}
    assert {e.answer().split()[0] for e in exchanges if e.variant == "v2"} == {"you"}  # the shadow answered
    assert len({e.event_id for e in exchanges}) == len(prompts)  # a request and its shadow copy share one id
    raw = "".join(p.read_text() for p in capture.root.rglob("*.jsonl"))
    assert "@example.com" not in raw and "[REDACTED_EMAIL]" in raw
    line = json.loads(raw.splitlines()[0])
    assert set(line) == {"captureData", "eventMetadata", "eventVersion"}
    assert line["captureData"]["endpointInput"]["encoding"] == "JSON"

    dataset = tmp_path / "captured.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in as_chat_records(exchanges)))
    report = validate_dataset([dataset.as_uri()], open_store(dataset.as_uri()), ValidationOptions())
    assert report.ok and report.format == "chat" and report.records == 2 * len(prompts), report.errors
    assert not report.pii_counts
