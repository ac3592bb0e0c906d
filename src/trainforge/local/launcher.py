"""Local job launcher: runs the training and evaluation containers' entry points as subprocesses on an
``/opt/ml`` tree, streaming their JSON metric lines to a callback, keeping their full logs.

This is the local twin of CreateTrainingJob/CreateProcessingJob: the same entry points, the same
contract files, so what passes here runs in SageMaker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainforge.contracts import TrainingRequest
from trainforge.errors import EvaluationFailed, TrainingFailed
from trainforge.local.file_store import uri_to_path
from trainforge.local.opt_ml import prepare_processing_tree, prepare_training_tree

OnRecord = Callable[[dict[str, Any]], None]


def _stream(command: list[str], log: Path, on_record: OnRecord | None) -> int:
    """Run, tee everything to ``log``, hand each JSON line on stdout to ``on_record``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if on_record is not None and line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    on_record(json.loads(line))
        return process.wait()


def _failure_reason(path: Path, log: Path) -> str:
    if path.is_file():
        return path.read_text().strip()
    tail = log.read_text().splitlines()[-20:] if log.is_file() else []
    return "no failure file; last log lines:\n" + "\n".join(tail)


def run_training_job(
    request: TrainingRequest, train_root: Path, model_dir: Path, on_record: OnRecord | None = None
) -> Path:
    """Train into ``train_root`` (the /opt/ml tree), then move the model to ``model_dir``; returns it."""
    channels = {name: uri_to_path(uri) for name, uri in request.channels.items()}
    prepare_training_tree(train_root, channels, request.hyperparameters)
    log = train_root / "logs" / "train.log"
    code = _stream(
        [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(train_root), "train"], log, on_record
    )
    if code != 0:
        raise TrainingFailed(_failure_reason(train_root / "output" / "failure", log), details=str(log))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.move(str(train_root / "model"), model_dir)
    (train_root / "model").mkdir()
    return model_dir


def run_evaluation_job(
    processing_root: Path, inputs: dict[str, Path], config: dict[str, Any], on_record: OnRecord | None = None
) -> Path:
    prepare_processing_tree(processing_root, inputs, config)
    log = processing_root / "logs" / "evaluate.log"
    code = _stream(
        [sys.executable, "-m", "trainforge.evaluation.entrypoint", "--processing-root", str(processing_root)],
        log,
        on_record,
    )
    if code != 0:
        raise EvaluationFailed(_failure_reason(processing_root / "output" / "failure", log), details=str(log))
    return processing_root / "output"
