"""A custom job on this machine: the framework container's toolkit done locally, from the same request.

Training: the /opt/ml tree laid out as for the built-in loop, the packed source unpacked into ``code/``,
a virtualenv of the framework and the script's requirements (cached, :mod:`trainforge.custom.venvs`), and
``python ENTRY_POINT --name value ...`` with the ``SM_*`` variables, its JSON lines streamed as the built-in
loop's are. A run that ends without a model in ``SM_MODEL_DIR`` or without one metric line fails with the
reason (:data:`NO_MODEL`, :data:`NO_METRICS`; the triage hints match them), its log kept.

Evaluation with ``custom.evaluation_entry_point``: the same venv and source, on the processing tree the
built-in evaluation gets (``$TRAINFORGE_PROCESSING_ROOT/input/{model,base_model,data,config}``), writing the
EvaluationReport the gate reads to ``output/report.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainforge.aws.sagemaker_requests import METRICS
from trainforge.contracts import EvaluationReport, TrainingRequest
from trainforge.custom.frameworks import FRAMEWORKS
from trainforge.custom.script_mode import (
    NO_METRICS,
    NO_MODEL,
    REQUIREMENTS,
    WHEELHOUSE,
    arguments,
    user_hyperparameters,
)
from trainforge.custom.source import requirement_lines
from trainforge.custom.toolkit import install_source, script_process, submitted_archive
from trainforge.custom.venvs import cached_venv
from trainforge.errors import EvaluationFailed, TrainingFailed
from trainforge.evaluation.html_report import render
from trainforge.local.file_store import uri_to_path
from trainforge.local.launcher import ChildRun, OnRecord, failure_reason, stream
from trainforge.local.opt_ml import prepare_processing_tree, prepare_training_tree
from trainforge.spec import CustomSpec

NO_REPORT = "wrote no evaluation report"
#: the lineage file the platform writes beside the model (the built-in loop writes the same one)
LINEAGE_FILE = "trainforge.json"
#: where the evaluation script finds its inputs and writes its report (/opt/ml/processing in AWS)
PROCESSING_ROOT_VARIABLE = "TRAINFORGE_PROCESSING_ROOT"


def script_venv(custom: CustomSpec, code: Path, cache: Path) -> tuple[Path, dict[str, float]]:
    """The venv the script runs in: the framework (once per machine), the ``requirements.txt`` at the root of
    ``code`` on top, as the toolkit installs it (Prepare packs the declared file there; once per requirement
    set; from the source's wheelhouse when it has one, as in AWS). Returns it and the seconds spent building
    each layer."""
    assert custom.framework is not None
    framework, seconds = cached_venv(cache, FRAMEWORKS[custom.framework].local_packages)
    timings: dict[str, float] = {custom.framework: seconds}
    installed = code / REQUIREMENTS
    requirements = requirement_lines(installed.read_text()) if installed.is_file() else ()
    if not requirements:
        return framework, timings
    wheels = sorted(p.name for p in (code / WHEELHOUSE).glob("*.whl"))
    options = ["--no-index", "--find-links", str(code / WHEELHOUSE)] if wheels else []
    # the wheel names join the key: the same requirements from another wheelhouse are another venv
    venv, seconds = cached_venv(cache, requirements, [framework], options, identity=wheels)
    timings["requirements"] = seconds
    return venv, timings


def _script_failure(what: str, run: ChildRun, failure: Path, log: Path) -> str:
    """The launcher's reason; a script's own failure file is quoted after whose it is and how it ended, so
    the cause (and its triage hint) say that the user's script failed."""
    reason = failure_reason(what, run, failure, log)
    if failure.is_file():
        return f"the {what} exited with code {run.code}; its failure file says:\n{reason}"
    return reason


def _metric_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines that carry a metric SageMaker's MetricDefinitions match (``sagemaker_requests.METRICS``)."""
    fields = set(METRICS.values())
    return [record for record in records if fields.intersection(record)]


def run_script_training(
    request: TrainingRequest,
    custom: CustomSpec,
    train_root: Path,
    model_dir: Path,
    venv_cache: Path,
    on_record: OnRecord | None = None,
) -> Path:
    """Run the script on ``train_root`` (the /opt/ml tree), check what it left, move the model to
    ``model_dir`` with the lineage file beside it; returns ``model_dir``."""
    started = time.time()
    channels = {name: uri_to_path(uri) for name, uri in request.channels.items()}
    prepare_training_tree(train_root, channels, request.hyperparameters)
    for stale in (train_root / "model", train_root / "output" / "failure"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    (train_root / "model").mkdir()
    code, entry_point = install_source(train_root, request.hyperparameters)
    venv, _ = script_venv(custom, code, venv_cache)
    python = venv / "bin" / "python"
    command, environment = script_process(python, train_root, code, entry_point, request.hyperparameters)
    log = train_root / "logs" / "train.log"
    run = stream(command, log, on_record, cwd=code, environment=environment)
    what = f"custom script {entry_point}"
    if run.code != 0:
        raise TrainingFailed(_script_failure(what, run, train_root / "output" / "failure", log), details=str(log))
    if not any((train_root / "model").iterdir()):
        raise TrainingFailed(f"the {what} exited 0 but {NO_MODEL}; its log: {log}", details=str(log))
    metrics = _metric_records(run.records)
    if not metrics:
        raise TrainingFailed(
            f"the {what} exited 0 but {NO_METRICS} (a JSON line with one of {sorted(METRICS.values())}); its "
            f"log: {log}",
            details=str(log),
        )
    history = train_root / "checkpoints" / "metrics.jsonl"
    history.write_text("".join(json.dumps(record) + "\n" for record in metrics))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.move(str(train_root / "model"), model_dir)
    (train_root / "model").mkdir()
    archive = submitted_archive(train_root, request.hyperparameters).read_bytes()
    _write_lineage(model_dir, custom, request, archive, metrics, time.time() - started)
    return model_dir


def _write_lineage(
    model_dir: Path,
    custom: CustomSpec,
    request: TrainingRequest,
    archive: bytes,
    metrics: list[dict[str, Any]],
    seconds: float,
) -> None:
    losses = [float(r["loss"]) for r in metrics if "loss" in r]
    evals = [float(r["eval_loss"]) for r in metrics if "eval_loss" in r]
    lineage = {
        "method": "custom",
        "framework": custom.framework,
        "entry_point": custom.entry_point,
        "source_sha256": hashlib.sha256(archive).hexdigest(),
        "hyperparameters": user_hyperparameters(request.hyperparameters),
        "final_loss": losses[-1] if losses else None,
        "best_eval_loss": min(evals) if evals else None,
        "wall_seconds": round(seconds, 1),
        "tokens_seen": 0,
    }
    (model_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2))


def run_script_evaluation(
    custom: CustomSpec,
    train_root: Path,
    processing_root: Path,
    inputs: dict[str, Path],
    config: dict[str, Any],
    venv_cache: Path,
    hyperparameters: dict[str, str],
) -> Path:
    """Run ``custom.evaluation_entry_point`` from the training job's unpacked source on the processing
    tree; returns its output folder holding report.json (validated) and report.html."""
    assert custom.evaluation_entry_point is not None
    prepare_processing_tree(processing_root, inputs, config)
    code = train_root / "code"
    venv, _ = script_venv(custom, code, venv_cache)
    log = processing_root / "logs" / "evaluate.log"
    run = stream(
        [str(venv / "bin" / "python"), custom.evaluation_entry_point, *arguments(hyperparameters)],
        log,
        None,
        cwd=code,
        environment={PROCESSING_ROOT_VARIABLE: str(processing_root)},
    )
    what = f"custom evaluation script {custom.evaluation_entry_point}"
    output = processing_root / "output"
    if run.code != 0:
        raise EvaluationFailed(_script_failure(what, run, output / "failure", log), details=str(log))
    report_file = output / "report.json"
    if not report_file.is_file():
        raise EvaluationFailed(f"the {what} exited 0 but {NO_REPORT} at {report_file}", details=str(log))
    try:
        report = EvaluationReport.model_validate_json(report_file.read_text())
    except ValidationError as exc:
        raise EvaluationFailed(
            f"the {what} wrote {report_file}, which is not an EvaluationReport (docs/training.md, Your own "
            f"code): {exc}",
            details=str(log),
        ) from exc
    history_file = inputs.get("metrics")
    history = [json.loads(line) for line in history_file.read_text().splitlines()] if history_file else []
    (output / "report.html").write_text(render(report, history))
    return output
