"""Local job launcher: runs the training and evaluation containers' entry points as subprocesses on an
``/opt/ml`` tree, streaming their JSON metric lines to a callback, keeping their full logs.

This is the local twin of CreateTrainingJob/CreateProcessingJob: the same entry points, the same
contract files, so what passes here runs in SageMaker. A child that dies by a signal (the kernel's
out-of-memory killer sends SIGKILL) writes no failure file: the failure then names the signal, and for
the memory it carries the run's own estimate and the highest resident set the launcher saw the child reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.contracts import TrainingRequest
from trainforge.errors import EvaluationFailed, TrainingFailed
from trainforge.local.file_store import uri_to_path
from trainforge.local.opt_ml import prepare_processing_tree, prepare_training_tree
from trainforge.planning import memory_facts

OnRecord = Callable[[dict[str, Any]], None]


def resident_set(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (its high-water mark) of a running process, in bytes; empty once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}


class PeakWatch:
    """Follows a child's resident set from outside while it runs: its peak survives the child, whatever
    ends it. With ``limit`` (bytes) the child is killed with SIGKILL when its RSS passes it."""

    def __init__(self, process: subprocess.Popen[Any], every: float = 0.5, limit: int | None = None) -> None:
        self.process, self.every, self.limit = process, every, limit
        self.peak = 0
        self.stopped = False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while self.process.poll() is None:
            status = resident_set(self.process.pid)
            self.peak = max(self.peak, status.get("VmHWM", 0))
            if self.limit is not None and status.get("VmRSS", 0) > self.limit:
                self.stopped = True
                self.process.send_signal(signal.SIGKILL)
                return
            threading.Event().wait(self.every)

    def join(self) -> None:
        self._thread.join()


class StopJob(Exception):
    """Raised by an ``on_record`` callback to end the job at once (a tuner pruning a trial): the launcher
    kills the child and, for a training job, raises it again once the child is gone."""


@dataclass
class ChildRun:
    code: int
    peak_rss: int
    records: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    @property
    def signal_name(self) -> str | None:
        """The signal that ended the child (a negative return code), e.g. SIGKILL; None if it exited."""
        if self.code >= 0:
            return None
        try:
            return signal.Signals(-self.code).name
        except ValueError:
            return f"signal {-self.code}"


def stream(
    command: list[str],
    log: Path,
    on_record: OnRecord | None,
    cwd: Path | None = None,
    environment: dict[str, str] | None = None,
) -> ChildRun:
    """Run, tee everything to ``log``, hand each JSON line on stdout to ``on_record``, follow its RSS.
    ``environment`` adds to (or overrides) this process's variables."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env |= environment or {}
    records: list[dict[str, Any]] = []
    stopped = False
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1, cwd=cwd
        )
        watch = PeakWatch(process)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
                    if on_record is not None and not stopped:
                        try:
                            on_record(records[-1])
                        except StopJob:
                            process.kill()
                            stopped = True
        code = process.wait()
        watch.join()
        return ChildRun(code, watch.peak, records, stopped)


def failure_reason(what: str, run: ChildRun, path: Path, log: Path) -> str:
    """The child's own reason (its failure file), or what the launcher knows: how it ended (the signal that
    killed it, or its exit code: torchrun exits 1 when a worker was killed), how far it got, the memory
    facts, and the last lines it logged."""
    if path.is_file():
        return path.read_text().strip()
    tail = log.read_text().splitlines()[-20:] if log.is_file() else []
    steps = [record["step"] for record in run.records if "loss" in record and "step" in record]
    where = f" after step {steps[-1]}" if steps else " before its first step" if what == "training" else ""
    ended = f"was killed by {run.signal_name}" if run.signal_name else f"exited with code {run.code}"
    facts = memory_facts(run.records, run.peak_rss or None)
    return (
        f"the {what} process {ended}{where} and left no failure file"
        + (f". {facts}" if facts else ".")
        + "\nlast log lines:\n"
        + "\n".join(tail)
    )


def run_training_job(
    request: TrainingRequest, train_root: Path, model_dir: Path, on_record: OnRecord | None = None
) -> Path:
    """Train into ``train_root`` (the /opt/ml tree), then move the model to ``model_dir``; returns it."""
    channels = {name: uri_to_path(uri) for name, uri in request.channels.items()}
    prepare_training_tree(train_root, channels, request.hyperparameters)
    failure = train_root / "output" / "failure"
    failure.unlink(missing_ok=True)  # a previous attempt's reason is not this one's
    log = train_root / "logs" / "train.log"
    run = stream(
        [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(train_root), "train"], log, on_record
    )
    if run.stopped:
        raise StopJob(f"stopped by its caller; log: {log}")
    if run.code != 0:
        raise TrainingFailed(failure_reason("training", run, failure, log), details=str(log))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.move(str(train_root / "model"), model_dir)
    (train_root / "model").mkdir()
    return model_dir


def run_evaluation_job(
    processing_root: Path, inputs: dict[str, Path], config: dict[str, Any], on_record: OnRecord | None = None
) -> Path:
    prepare_processing_tree(processing_root, inputs, config)
    failure = processing_root / "output" / "failure"
    failure.unlink(missing_ok=True)
    log = processing_root / "logs" / "evaluate.log"
    run = stream(
        [sys.executable, "-m", "trainforge.evaluation.entrypoint", "--processing-root", str(processing_root)],
        log,
        on_record,
    )
    if run.code != 0:
        raise EvaluationFailed(failure_reason("evaluation", run, failure, log), details=str(log))
    return processing_root / "output"
