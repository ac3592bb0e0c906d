from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def cdk_json_context() -> dict:
    """The context `npx cdk synth` reads from cdk.json (feature flags included): the tests synthesize what a
    deployment synthesizes."""
    return json.loads((ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):
    """All stacks, synthesized once with cdk.json's context and every nag pack attached (an unacknowledged
    finding fails synth). Bundling is skipped (the layer's pip install is exercised by `npx cdk synth`, see
    docs/deploy.md)."""
    import aws_cdk as cdk

    from infra.app import build

    outdir: Path = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context() | {"aws:cdk:bundling-stacks": [], "account": "123456789012", "region": "us-east-1"}
    app = cdk.App(outdir=str(outdir), context=context)
    stacks = build(app)
    app.synth()
    return {"app": app, "outdir": outdir, **stacks._asdict()}
