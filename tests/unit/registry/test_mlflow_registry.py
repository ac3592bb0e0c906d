"""MLflow on SQLite in a temp dir: runs, versions, and a champion alias that moves only on pass."""

from __future__ import annotations

from trainforge.registry import approval_for
from trainforge.registry.mlflow import MLflowRegistry


def test_versions_and_champion(tmp_path, registration):
    registry = MLflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "artifacts")
    artifact = tmp_path / "report.json"
    artifact.write_text("{}")
    first = registry.register(registration("run-a", True, approval_for(True, "auto")))
    assert (first.version, first.approval, first.registry) == ("1", "Approved", "mlflow")
    assert registry.champion("support").version == "1"
    # a failed gate registers a Rejected version and leaves the champion alone
    second = registry.register(registration("run-b", False, approval_for(False, "auto")))
    assert second.approval == "Rejected" and registry.champion("support").version == "1"
    # a manual-approval version does not move it either, until approved
    third = registry.register(registration("run-c", True, approval_for(True, "manual")))
    assert third.approval == "PendingManualApproval" and registry.champion("support").version == "1"
    registry.set_approval(third, "Approved")
    assert registry.champion("support").version == "3"
    assert [v.run_id for v in registry.versions("support")] == ["run-a", "run-b", "run-c"]
    assert registry.model_names() == ["support"]
    # the run carries params and the metric history
    run = registry.client.get_run(registry.client.get_model_version("support", "1").run_id)
    assert run.data.params["lr"] == "0.1" and run.data.tags["gate"] == "passed"
    history = registry.client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.5)]
    assert run.data.metrics["eval.perplexity.delta"] == 0.2
