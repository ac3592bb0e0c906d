"""Shared fixtures. Models are tiny ones built from a config, once per session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainforge.training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama-test")


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainforge.training.tiny_media import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("tiny") / "tiny-whisper-test")


@pytest.fixture(scope="session")
def tiny_idefics3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainforge.training.tiny_media import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny") / "tiny-idefics3-test")


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainforge.training.tiny_media import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny") / "tiny-qwen2-vl-test")


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: list[Any], name: str = "data.jsonl") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def chat(user: str = "What is the capital of France?", assistant: str = "Paris.") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


ROOT = Path(__file__).resolve().parent.parent


def load_handler(function: str) -> Any:
    """Import functions/NAME/app.py the way Lambda does (by file, not as a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"functions_{function}", ROOT / "functions" / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def s3_event(bucket: str, key: str, version_id: str | None, size: int = 0) -> dict[str, Any]:
    """An EventBridge "Object Created" event, from the fixture, as S3 sends it (key URL-encoded)."""
    from urllib.parse import quote_plus

    event = json.loads((ROOT / "tests" / "events" / "s3_object_created.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update({"key": quote_plus(key, safe="/"), "size": size, "version-id": version_id})
    return event


class FakeContext:
    """The attributes Powertools reads from a Lambda context object."""

    function_name = "trainforge-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:trainforge-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_NAMESPACE": "TrainForge",
        "POWERTOOLS_DEV": "false",
    }.items():
        monkeypatch.setenv(name, value)


def cdk_json_context() -> dict[str, Any]:
    """The context `npx cdk synth` reads from cdk.json (feature flags included): the tests synthesize what a
    deployment synthesizes."""
    return json.loads((ROOT / "cdk.json").read_text())["context"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All stacks, synthesized once per session with cdk.json's context and every nag pack attached (an
    unacknowledged finding fails synth): the infra tests read the templates, the end-to-end tests deploy
    them on moto. Bundling is skipped (the layer's pip install is exercised by `npx cdk synth`, see
    docs/deploy.md)."""
    import aws_cdk as cdk

    from infra.app import build

    outdir: Path = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context() | {"aws:cdk:bundling-stacks": [], "account": "123456789012", "region": "us-east-1"}
    app = cdk.App(outdir=str(outdir), context=context)
    stacks = build(app)
    app.synth()
    return {"app": app, "outdir": outdir, **stacks._asdict()}
