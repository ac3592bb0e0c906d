"""Parity before traffic: a new version joins the endpoint at no traffic, answers its evaluation's reference
prompts by variant name, and only then takes traffic. A serving configuration that changes answers (another
chat template, another dtype) is caught, the endpoint goes back to what it served, the registry's alias
stays, the version is rejected; an identical one passes and is released.

The endpoint here is the local server's router in this process (``RouterEndpoint``), so that a test can
choose each version's engine; the server process the local deployer starts runs the same router
(``test_local_runner``, ``test_rollout_local``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import chat
from trainforge.contracts import EvaluationReport, GateVerdict, MetricComparison, ModelVersion
from trainforge.errors import ParityFailed
from trainforge.pipeline import parity, rollout
from trainforge.registry import Registration
from trainforge.serving.rollout import EndpointRecord, load_record, save_record
from trainforge.serving.variants import TARGET_HEADER, Layout, VariantRouter
from trainforge.spec import parse_spec

QA = [("hello how are you", "i am fine"), ("where is my order", "it shipped"), ("what is the capital", "paris")]


class RouterEndpoint:
    """The local endpoint's router, with the engine of each model folder chosen by the test."""

    def __init__(self, root: str, engines: dict[str, object]) -> None:
        self.root, self.engines, self.router = root, engines, None

    def current(self, name: str) -> EndpointRecord | None:
        return load_record(self.root, name)

    def apply(self, record: EndpointRecord, before: EndpointRecord | None, *, canary: bool = False) -> str:
        from trainforge.serving.app import create_app

        save_record(self.root, record)
        apps = {v.name: create_app(self.engines[v.model_uri]) for v in record.variants}
        self.router = VariantRouter(Layout(record, apps))
        return "InService"

    def invoke(self, name: str, variant: str, body: dict) -> dict:
        with TestClient(self.router) as client:
            return client.post("/invocations", json=body, headers={TARGET_HEADER.decode(): variant}).json()

    def url(self, name: str) -> str | None:
        return None


@pytest.fixture
def deployment(tmp_path, tiny_model_dir):
    """Version 1 deployed and champion; version 2's evaluation reference written from tiny_model_dir (what
    evaluation scored). Returns a function that deploys version 2 from a given folder and engine."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainforge.evaluation.parity import parity_reference
    from trainforge.registry.mlflow import MLflowRegistry
    from trainforge.serving.engine import Engine

    artifacts = tmp_path / "artifacts"
    registry = MLflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "mlflow")
    records = [chat(q, a) for q, a in QA]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    reference = parity_reference(
        model, AutoTokenizer.from_pretrained(tiny_model_dir), records, "chat", run_id="run2", count=3, max_new_tokens=6
    )
    (artifacts / "runs" / "run2" / "evaluation").mkdir(parents=True)
    (artifacts / "runs" / "run2" / "evaluation" / "parity.json").write_text(reference.model_dump_json())
    versions = [registry.register(registration(run, tiny_model_dir)) for run in ("run1", "run2")]
    aliases = rollout.MLflowAliases(registry)

    def deploy(folder: Path, spec_text: str, dtype: torch.dtype = torch.float32) -> tuple[RouterEndpoint, ModelVersion]:
        served = Engine(folder, name="support")
        served.model.to(dtype)  # the endpoint's serving configuration
        v1, v2 = versions[0], versions[1].model_copy(update={"model_uri": folder.as_uri()})
        endpoint = RouterEndpoint(
            artifacts.as_uri(), {v1.model_uri: Engine(tiny_model_dir, name="support"), v2.model_uri: served}
        )
        spec = parse_spec(SPEC + spec_text)
        rollout.deploy(v1, spec, endpoint, aliases, artifacts.as_uri())
        rollout.deploy(v2, spec, endpoint, aliases, artifacts.as_uri())
        return endpoint, v2

    deploy.registry = registry  # type: ignore[attr-defined]
    deploy.artifacts = artifacts  # type: ignore[attr-defined]
    return deploy


SPEC = "name: support\nbase_model: tiny\ndata: {train: datasets/support/}\n"


def registration(run_id: str, folder: Path) -> Registration:
    metric = MetricComparison(
        name="perplexity", base=10, tuned=8, delta=0.2, ci_low=0.1, ci_high=0.3, higher_is_better=False
    )
    report = EvaluationReport(
        run_id=run_id,
        base_model="tiny",
        tuned_model_uri=folder.as_uri(),
        examples=3,
        metrics=[metric],
        forgetting=None,
        verdict=GateVerdict(passed=True, reasons=["ok"]),
    )
    return Registration(
        run_id=run_id,
        name="support",
        model_uri=folder.as_uri(),
        evaluation=report,
        approval="Approved",
        bom_uri=f"file:///runs/{run_id}/bom.json",
    )


def served(record: EndpointRecord) -> list[tuple[str, int, bool]]:
    return [(v.name, v.weight, v.shadow) for v in record.variants]


def test_an_identical_serving_configuration_passes_and_takes_its_traffic(deployment, tmp_path, tiny_model_dir):
    identical = shutil.copytree(tiny_model_dir, tmp_path / "identical")
    endpoint, _ = deployment(
        identical, "deploy: {rollout: {policy: ab, challenger_percent: 10, parity_tolerance: 0.001}}"
    )
    record = endpoint.current("support")
    assert served(record) == [("v1", 90, False), ("v2", 10, False)] and record.challenger.name == "v2"
    report = json.loads(
        Path(parity.report_uri(deployment.artifacts.as_uri(), "run2").removeprefix("file://")).read_text()
    )
    assert report["passed"] and report["prompts"] == 3 and report["tokens_compared"] == 18
    assert report["max_logprob_difference"] < 1e-5
    client = deployment.registry.client
    assert str(client.get_model_version_by_alias("support", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("support", "challenger").version) == "2"


@pytest.mark.parametrize("change", ["chat template", "dtype"])
def test_a_serving_configuration_that_changes_answers_is_caught_and_no_traffic_moves(
    deployment, tmp_path, tiny_model_dir, change
):
    """Another chat template (role followed by ': ' instead of a newline) moves the tiny model's
    log-probabilities by 2e-2 to 1e-1; serving in bf16 moves them by ~3e-3 (more on real models)."""
    import torch

    folder = shutil.copytree(tiny_model_dir, tmp_path / "changed")
    dtype = torch.float32
    if change == "chat template":
        template = folder / "chat_template.jinja"
        template.write_text(template.read_text().replace("message['role'] + '\n'", "message['role'] + ': '"))
    else:
        dtype = torch.bfloat16
    with pytest.raises(ParityFailed, match="does not answer as evaluation did, so no traffic moved") as failed:
        deployment(folder, "deploy: {rollout: {policy: replace, parity_tolerance: 0.001}}", dtype)
    assert "log-probability" in str(failed.value) and "parity-check.json" in str(failed.value)
    record = load_record(deployment.artifacts.as_uri(), "support")
    assert served(record) == [("v1", 100, False)] and record.staged is None and record.champion.name == "v1"
    client = deployment.registry.client
    assert str(client.get_model_version_by_alias("support", "champion").version) == "1"
    assert client.get_model_version("support", "2").tags["approval"] == "Rejected"
