"""A/B locally, end to end: the local deployer's server process serves two versions with the spec's
weights, ``trainforge promote`` moves the traffic and the MLflow alias to the challenger, ``trainforge
rollback`` moves both back and rejects the version rolled back."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.conftest import chat
from tests.integration.test_parity import SPEC, registration
from trainforge.cli import main
from trainforge.pipeline import rollout
from trainforge.serving.rollout import load_record
from trainforge.spec import parse_spec


def answered_by(url: str, count: int) -> Counter:
    body = {"messages": [{"role": "user", "content": "hello how are you"}], "max_tokens": 2}
    return Counter(
        httpx.post(f"{url}/invocations", json=body, timeout=60).headers["x-amzn-invoked-production-variant"]
        for _ in range(count)
    )


@pytest.fixture
def endpoint(tmp_path, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.taught import saying
    from trainforge.evaluation.parity import parity_reference
    from trainforge.registry.mlflow import MLflowRegistry
    from trainforge.serving.deployers.local import LocalDeployer, free_port
    from trainforge.settings import Settings

    settings = Settings(workspace=tmp_path / "ws")
    workspace = settings.workspace.resolve()
    registry = MLflowRegistry(settings.resolved_mlflow_uri(), artifact_root=workspace / "mlflow-artifacts")
    folders = {"run1": tiny_model_dir, "run2": saying(tiny_model_dir, tmp_path / "v2", " france")}
    for run_id, folder in folders.items():  # each version's reference, as its evaluation job writes it
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        reference = parity_reference(
            model, AutoTokenizer.from_pretrained(folder), [chat()], "chat", run_id=run_id, count=1, max_new_tokens=4
        )
        target = workspace / "artifacts" / "runs" / run_id / "evaluation"
        target.mkdir(parents=True)
        (target / "parity.json").write_text(reference.model_dump_json())
    versions = [registry.register(registration(run_id, folder)) for run_id, folder in folders.items()]
    deployer = LocalDeployer(workspace, port=free_port(18100))
    yield settings, registry, deployer, versions
    deployer.stop("support")


@pytest.mark.slow  # a model server process starts (torch, transformers) and MLflow migrates its SQLite: ~35 s
def test_ab_promote_and_rollback_move_traffic_and_the_alias(endpoint):
    settings, registry, deployer, (v1, v2) = endpoint
    artifacts, aliases = settings.resolved_artifacts_uri(), rollout.MLflowAliases(registry)
    rollout.deploy(v1, parse_spec(SPEC), deployer, aliases, artifacts)
    ab = parse_spec(SPEC + "deploy: {rollout: {policy: ab, challenger_percent: 50}}")
    deployment = rollout.deploy(v2, ab, deployer, aliases, artifacts)
    assert deployment.traffic == {"v1": 50, "v2": 50} and deployment.url == deployer.url("support")
    assert set(answered_by(deployment.url, 30)) == {"v1", "v2"}
    alias = lambda name: str(registry.client.get_model_version_by_alias("support", name).version)  # noqa: E731
    assert (alias("champion"), alias("challenger")) == ("1", "2")

    assert main(["promote", "support", "--workspace", str(settings.workspace)]) == 0
    record = load_record(settings.workspace.resolve().as_uri(), "support")
    assert [(v.name, v.weight) for v in record.variants] == [("v1", 0), ("v2", 100)] and record.champion.name == "v2"
    assert answered_by(deployment.url, 10) == {"v2": 10} and alias("champion") == "2"

    assert main(["rollback", "support", "--workspace", str(settings.workspace)]) == 0
    record = load_record(settings.workspace.resolve().as_uri(), "support")
    assert [(v.name, v.weight) for v in record.variants] == [("v1", 100), ("v2", 0)] and record.champion.name == "v1"
    assert answered_by(deployment.url, 10) == {"v1": 10} and alias("champion") == "1"
    assert registry.client.get_model_version("support", "2").tags["approval"] == "Rejected"
    assert main(["rollback", "support", "--workspace", str(settings.workspace)]) == 2  # nothing earlier to go to
