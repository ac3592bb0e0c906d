"""Fixtures of the end-to-end tests: the synthesized stacks deployed on moto (``deployed.py``) with the
SageMaker twin running what they ask for. ``aws`` is a fresh deployment per test; the images' venvs are
built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.deployed import ACCOUNT, REGION, Pipeline, deploy
from tests.twin import ImageRegistry, SageMakerTwin, VenvBuilder, fixtures

# moto with the Step Functions engine executing definitions, as the twin's own tests use it
twin_aws = fixtures.twin_aws


@pytest.fixture(scope="session")
def images(synthesized: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> ImageRegistry:
    """The Docker image assets of the synthesized app, each run from a venv of its Dockerfile's extras."""
    registry = ImageRegistry(VenvBuilder(ROOT / ".twin" / "venvs", tmp_path_factory.mktemp("twin-e2e")))
    uris = registry.register_cdk_assets(synthesized["outdir"], ACCOUNT, REGION)
    (cuda,) = [uri for uri, image in uris.items() if image.dockerfile.name == "Dockerfile"]
    registry.serve_lmi_with(cuda)
    registry.prepare()
    return registry


@pytest.fixture
def aws(
    twin_aws: None,
    images: ImageRegistry,
    synthesized: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
) -> Iterator[Pipeline]:
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original_wait = WaitFunction._wait_interval

    def compressed(self: Any, env: Any, wait_seconds: int) -> None:  # a minute of Wait is a second here
        original_wait(self, env, max(1, wait_seconds // 60))

    monkeypatch.setattr(WaitFunction, "_wait_interval", compressed)
    with SageMakerTwin(images, tmp_path / "twin", stop_grace_seconds=5) as twin:
        deployed = deploy(synthesized["outdir"])

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            payload, failed = deployed.dispatch(function_name, body)
            if failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return payload

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        # every variable of every function, set for the test: a dispatch then only changes values and never
        # adds or removes a key, which another thread iterating os.environ (botocore's proxy lookup, as the
        # test's own calls make clients) would trip on with a KeyError
        for function in deployed.functions.values():
            for name, value in function.environment.items():
                monkeypatch.setenv(name, value)
        pipeline = Pipeline(deployed, twin)
        for path in tiny_model_dir.iterdir():
            pipeline.s3.upload_file(str(path), pipeline.artifacts, f"base-models/tiny-llama-test/{path.name}")
        yield pipeline
    assert not twin.violations, "\n".join(map(str, twin.violations))
