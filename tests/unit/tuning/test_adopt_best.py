"""Without ``tuning.refit`` the best trial's own model and metric history become the run's, replacing what a
previous attempt of the run left there."""

from __future__ import annotations

from pathlib import Path

from trainforge.contracts import TrialSummary
from trainforge.tuning.local import StudyResult, adopt_best


def test_the_best_trials_model_and_metrics_become_the_runs(tmp_path: Path):
    trial = tmp_path / "tune" / "trial-abc"
    (trial / "model").mkdir(parents=True)
    (trial / "model" / "adapter_model.safetensors").write_bytes(b"weights")
    (trial / "opt-ml" / "checkpoints").mkdir(parents=True)
    (trial / "opt-ml" / "checkpoints" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    best = TrialSummary(number=1, state="complete", params={"lora_rank": 8}, objective=0.4, best=True, job_name="abc")
    result = StudyResult(
        best=best,
        trials=[best],
        model_dir=trial / "model",
        hyperparameters={"lora_rank": "8"},
        metrics_file=trial / "opt-ml" / "checkpoints" / "metrics.jsonl",
        model_step=40,
    )
    run_model, run_metrics = tmp_path / "model", tmp_path / "train" / "checkpoints" / "metrics.jsonl"
    run_model.mkdir()
    (run_model / "stale.bin").write_bytes(b"an earlier attempt")
    assert adopt_best(result, run_model, run_metrics) == run_model
    assert sorted(p.name for p in run_model.iterdir()) == ["adapter_model.safetensors"]
    assert run_metrics.read_text() == '{"step": 1, "loss": 0.5}\n'
    assert (trial / "model" / "adapter_model.safetensors").is_file()  # the trial keeps its own
