from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):
    """All stacks, synthesized once with every nag pack attached (an unacknowledged finding fails synth).
    Bundling is skipped (the layer's pip install is exercised by `npx cdk synth`, see docs/deploy.md)."""
    import aws_cdk as cdk

    from infra.app import build

    outdir: Path = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(
        outdir=str(outdir), context={"aws:cdk:bundling-stacks": [], "account": "123456789012", "region": "us-east-1"}
    )
    stacks = build(app)
    app.synth()
    return {"app": app, "outdir": outdir, **stacks._asdict()}
