"""The one end-to-end tuning run (local: Optuna over ``trainforge-train`` trials), on the tiny model: a spec
with no ``hyperparameters:`` gets automatic settings with their reasons; the study is killed mid-trial and
the rerun resumes it (finished trials kept, the interrupted one continued from its own checkpoints); trials
are chosen by exact match on their selection slice (``tuning.objective``); the best trial's settings are then refit on the whole training side, and that model goes through evaluation,
gate and registry as a single run's model does."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import chat
from tests.integration.test_local_runner import QA
from trainforge.pipeline.local_runner import LocalRunner
from trainforge.settings import Settings
from trainforge.tuning.auto import MIN_STEPS

SPEC = """name: tuned
base_model: tiny
data: {train: datasets/support/train.jsonl, validation_fraction: 0.2, replay_fraction: 0.1}
tuning: {objective: exact_match, max_jobs: 2, early_stopping: false, refit: true,
         ranges: {epochs: [2.0, 4.0], lora_rank: [2, 4]}}
evaluation: {min_improvement: 0.0, max_forgetting: 100.0, max_examples: 16, generation_samples: 2, max_new_tokens: 4}
deploy: {target: none}
"""
CHILD = """
import sys
from pathlib import Path
from trainforge.pipeline.local_runner import LocalRunner
from trainforge.settings import Settings
LocalRunner(Settings(workspace=Path(sys.argv[1]), data_uri=Path(sys.argv[2]).as_uri())).run(Path(sys.argv[3]))
"""


def _second_trial_checkpointed(tune: Path) -> bool:
    """True once a second trial folder holds a complete checkpoint: the study is mid-way through it."""
    folders = sorted(tune.glob("trial-*"), key=lambda p: p.stat().st_mtime)
    return len(folders) >= 2 and any((folders[1] / "opt-ml/checkpoints").glob("step-*/COMPLETE"))


def trial_examples(metrics: Path) -> int:
    """The training examples a trial's data record counted (its selection slice held out)."""
    return next(json.loads(line)["examples"] for line in metrics.read_text().splitlines() if '"event": "data"' in line)


@pytest.mark.slow  # ~40 s on 2 idle cores: three tiny training processes, a kill, an evaluation
def test_a_killed_study_resumes_and_its_best_trial_is_the_run(tmp_path, capsys):
    data = tmp_path / "ws" / "data"
    (data / "jobs").mkdir(parents=True)
    (data / "datasets" / "support").mkdir(parents=True)
    rows = [chat(f"{q} {i}", a) for i, (q, a) in ((i, QA[i % 4]) for i in range(60))]
    (data / "datasets" / "support" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = data / "jobs" / "tuned.yaml"
    spec.write_text(SPEC)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "ws"), str(data), str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the trial's training process too
    )
    runs = tmp_path / "ws" / "artifacts" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and child.poll() is None:
        tunes = list(runs.glob("tuned-*/tune"))
        if tunes and _second_trial_checkpointed(tunes[0]):
            break
        time.sleep(0.2)
    assert child.poll() is None, "the study ended before its second trial checkpointed"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    tune = next(runs.glob("tuned-*/tune"))
    first, second = sorted(tune.glob("trial-*"), key=lambda p: p.stat().st_mtime)
    first_model = (first / "model" / "trainforge.json").stat().st_mtime

    outcome = LocalRunner(Settings(workspace=tmp_path / "ws", data_uri=data.as_uri())).run(spec)
    assert outcome.status == "succeeded", outcome.failure
    tune_at = outcome.steps.index("Tune")
    assert outcome.steps[tune_at - 1 : tune_at + 4] == ["Prepare", "Tune", "PrepareRefit", "Train", "PrepareEvaluation"]
    # resumed: the finished trial was not trained again; the killed one continued from its checkpoint
    assert (first / "model" / "trainforge.json").stat().st_mtime == first_model
    history = [json.loads(line) for line in (second / "opt-ml/checkpoints/metrics.jsonl").read_text().splitlines()]
    assert any(record.get("event") == "resumed" for record in history)
    assert sorted(p.name for p in tune.glob("trial-*")) == sorted([first.name, second.name])
    # the report: two counted trials, the chosen one marked, its model the run's
    trials = outcome.evaluation.trials
    assert len(trials) == 2 and sum(t.best for t in trials) == 1
    best = next(t for t in trials if t.best)
    # the run's model is the refit: the best trial's settings on the whole training side (its selection
    # slice too), as many passes over it as the trial's model trained
    lineage = json.loads((outcome.run_dir / "model" / "trainforge.json").read_text())
    assert lineage["hyperparameters"]["lora_rank"] == best.params["lora_rank"]
    assert lineage["hyperparameters"]["selection_fraction"] == 0.0 and "tuning" not in lineage
    trial_log = tune / f"trial-{best.job_name}" / "opt-ml/checkpoints/metrics.jsonl"
    objective = [json.loads(line) for line in trial_log.read_text().splitlines() if '"objective"' in line][-1]
    assert objective["feasible"] and lineage["steps"] == math.ceil(objective["model_step"] / 0.8)
    # chosen by exact match: Optuna was told 1 - the exact match the trial printed, and the report says so
    assert all(t.metric == "exact_match" for t in trials) and best.objective == pytest.approx(
        1 - objective["exact_match"]
    )
    assert (
        "objective (1 - exact match on the selection slice)" in (outcome.run_dir / "evaluation/report.html").read_text()
    )
    assert lineage["examples"] > trial_examples(trial_log) and lineage["replay_examples"] > 0
    assert "Tuning trials" in (outcome.run_dir / "evaluation" / "report.html").read_text()
    assert {p.name for p in outcome.evaluation.probes} >= {"general_text_perplexity", "knowledge_accuracy"}
    # auto hyperparameters, with their reasons, in the resolved spec: enough steps for this small dataset
    resolved = json.loads((outcome.run_dir / "resolved_spec.json").read_text())
    auto = resolved["auto"]
    assert {"epochs", "learning_rate", "lora_rank", "warmup_ratio"} <= set(auto)
    assert all(choice["reason"] for choice in auto.values())
    hyper = resolved["spec"]["hyperparameters"]
    plan = json.loads((outcome.run_dir / "plan.json").read_text())
    assert plan["work"]["steps"] >= MIN_STEPS or hyper["epochs"] == 8.0
    assert any(note.startswith("auto epochs") for note in plan["notes"])
    # trainforge runs show lists the trials
    from trainforge import cli

    capsys.readouterr()
    assert cli.main(["runs", "show", outcome.run_id, "--workspace", str(tmp_path / "ws")]) == 0
    assert "Tuning trials" in capsys.readouterr().out
