"""A job process that dies by a signal is named: the kernel's out-of-memory killer sends SIGKILL and leaves no
failure file, so the launcher's failure names the signal, carries the memory facts, and triage says what it
most likely was. SageMaker's own words for such a death are recognised the same way."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.unit.training.conftest import qa_rows
from trainforge.contracts import TrainingRequest
from trainforge.errors import EvaluationFailed, TrainingFailed
from trainforge.local import launcher
from trainforge.pipeline.triage import hint_for
from trainforge.training.config import TrainConfig


@pytest.fixture
def started(monkeypatch):
    """Every process the launcher starts, as it starts them."""
    processes: list[subprocess.Popen] = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            processes.append(self)

    monkeypatch.setattr(launcher.subprocess, "Popen", Recorded)
    return processes


def request(tmp_path, tiny_model_dir) -> TrainingRequest:
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("\n".join(json.dumps(row) for row in qa_rows(64)) + "\n")
    config = TrainConfig(
        max_steps=400, batch_size=4, max_seq_len=64, lora_rank=4, eval_every=1000, checkpoint_every=1000
    )
    return TrainingRequest(
        run_id="killed-abc",
        job_name="killed",
        training_job_name="killed-abc",
        image="local",
        instance_type="local",
        instance_count=1,
        spot=False,
        max_runtime_seconds=600,
        volume_size_gb=1,
        channels={"train": data.parent.as_uri(), "base_model": tiny_model_dir.as_uri()},
        hyperparameters=config.to_hyperparameters(),
        checkpoint_uri=(tmp_path / "train" / "checkpoints").as_uri(),
        output_uri=(tmp_path / "train" / "output").as_uri(),
    )


def test_a_training_process_killed_by_sigkill_is_named_with_its_memory(tmp_path, tiny_model_dir, started):
    def on_record(record):
        if record.get("step") == 2 and "loss" in record:
            started[0].send_signal(signal.SIGKILL)  # as the out-of-memory killer would

    with pytest.raises(TrainingFailed) as failed:
        launcher.run_training_job(request(tmp_path, tiny_model_dir), tmp_path / "train", tmp_path / "model", on_record)
    cause = str(failed.value)
    assert cause.startswith("the training process was killed by SIGKILL after step 2 and left no failure file.")
    assert "Memory: estimated peak" in cause and "(micro-batch 4) of" in cause and "peak seen" in cause
    assert "last log lines:" in cause
    hint = hint_for("TrainingFailed", cause)
    assert hint.startswith("Out of memory, most likely: the kernel's out-of-memory killer ends a process with SIGKILL")
    assert "Memory: estimated peak" in hint  # the facts, repeated beside the levers
    for lever in ("batch_size", "max_seq_len", "gradient_checkpointing: true", "method: lora", "more memory"):
        assert lever in hint


def test_an_evaluation_process_killed_by_sigkill_is_named(tmp_path, monkeypatch):
    class KilledAtOnce(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.send_signal(signal.SIGKILL)

    monkeypatch.setattr(launcher.subprocess, "Popen", KilledAtOnce)
    with pytest.raises(EvaluationFailed) as failed:
        launcher.run_evaluation_job(tmp_path / "processing", {}, {"run_id": "killed-abc"})
    cause = str(failed.value)
    assert cause.startswith("the evaluation process was killed by SIGKILL and left no failure file")
    hint = hint_for("EvaluationFailed", cause)
    assert hint.startswith("Out of memory, most likely") and "evaluation.max_examples" in hint


@pytest.mark.parametrize(
    "reason",
    [
        # SageMaker's FailureReason for a job out of memory (appended to the cause by the failure recorder)
        "ClientError: Please use an instance type with more memory, or reduce the size of job data processed on "
        "an instance.",
        "ClientError: Artifact upload failed:ClientError: Out of Memory. Please use a larger instance",
        # a container that exited by SIGKILL, as SageMaker and the training toolkit report it
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 137\nErrorMessage ""',
        "AlgorithmError: , exit code: 137",
        # torchrun's summary when the kernel killed one of its workers
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n  exitcode  : -9 (pid: 4242)\n"
        "  error_file: <N/A>\n  traceback : Signal 9 (SIGKILL) received by PID 4242",
    ],
)
def test_sagemaker_and_torchrun_words_for_a_kill_get_the_memory_hint(reason):
    cause = f"training job killed-abc-0 failed: {reason}"
    assert hint_for("TrainingFailed", cause).startswith("Out of memory, most likely")


def test_other_failures_keep_their_own_hints():
    assert not hint_for("TrainingFailed", "AlgorithmError: exit code: 1 NonFiniteLoss: loss became nan").startswith(
        "Out of memory"
    )
    assert hint_for("TrainingFailed", "exit code: 1370 (not a signal)").startswith("Read the logs")
