"""The bill of materials: everything needed to know what a model version is made of, and to replay it."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

from trainforge.contracts import DatasetReport, EvaluationReport, RunRequest, TrainingResult
from trainforge.store import pin_version


def local_environment() -> dict[str, str]:
    """What ran a local job (the analogue of the training image digest in AWS)."""
    versions = {}
    for package in ("trainforge", "torch", "transformers", "peft", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(), **versions}


def build_bom(
    request: RunRequest,
    dataset: DatasetReport,
    training: TrainingResult,
    evaluation: EvaluationReport,
    *,
    base_model_id: str,
    base_model_sha256: str,
    spec: dict[str, Any],
    image: str | None,
) -> dict[str, Any]:
    return {
        "run_id": request.run_id,
        "job": request.job_name,
        "trigger": request.trigger,
        "spec": {
            "uri": request.spec_uri,
            "sha256": request.spec_sha256,
            "version_id": request.spec_version_id,
            "content": spec,
        },
        "datasets": [
            # the report keys each file by the version it read (s3://...?versionId=...)
            {
                "uri": d.uri,
                "version_id": d.version_id,
                "sha256": dataset.sha256.get(pin_version(d.uri, d.version_id), d.sha256),
            }
            for d in request.datasets
        ],
        "dataset_sha256": dataset.sha256,
        "validation_report": dataset.report_uri,
        "base_model": {"id": base_model_id, "sha256": base_model_sha256},
        "training": {
            "image": image,
            "environment": None if image else local_environment(),
            "metrics": training.metrics,
            "metrics_uri": training.metrics_uri,
            "tokens_seen": training.tokens_seen,
            "wall_seconds": training.wall_seconds,
        },
        "evaluation": {
            "report": evaluation.report_uri,
            "html": evaluation.html_uri,
            "verdict": evaluation.verdict.model_dump() if evaluation.verdict else None,
        },
        "model_uri": training.model_uri,
        "replay": f"trainforge run {request.spec_uri}",
    }
