"""Running the app: ``trainforge serve MODEL_DIR|models:/NAME@ALIAS`` locally, ``IMAGE serve`` in SageMaker
(port 8080 or ``$SAGEMAKER_BIND_TO_PORT``, model in /opt/ml/model)."""

from __future__ import annotations

import os
from pathlib import Path

from trainforge.errors import UsageError
from trainforge.local.file_store import uri_to_path

SAGEMAKER_PORT = 8080


def resolve_model(reference: str, mlflow_uri: str) -> tuple[Path, str]:
    """A folder, or ``models:/NAME@alias`` / ``models:/NAME/VERSION`` looked up in the MLflow registry."""
    if not reference.startswith("models:/"):
        path = Path(reference)
        if not (path / "config.json").is_file():
            raise UsageError(f"{reference}: not a model folder (no config.json)")
        return path, path.name
    from trainforge.registry.mlflow import MLflowRegistry

    spec = reference.removeprefix("models:/")
    registry = MLflowRegistry(mlflow_uri)
    name, _, alias = spec.partition("@")
    if alias:
        from mlflow.exceptions import MlflowException

        try:
            version = registry.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            raise UsageError(f"{reference}: no such model or alias in {mlflow_uri}") from exc
    else:
        name, _, number = spec.partition("/")
        version = registry.client.get_model_version(name, number)
    return uri_to_path(str(version.source)), name


def serve(model_dir: Path, name: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    import uvicorn

    from trainforge.serving.app import create_app, load_engine

    app = create_app(load_engine(model_dir, name=name), api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=30)


def sagemaker_port() -> int:
    """The port SageMaker tells the container to listen on: ``SAGEMAKER_BIND_TO_PORT`` where it sets it
    (containers of an inference pipeline share one host), else 8080.
    https://docs.aws.amazon.com/sagemaker/latest/dg/inference-pipeline-real-time.html"""
    return int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or SAGEMAKER_PORT)


def serve_sagemaker(root: Path = Path("/opt/ml")) -> None:
    """SageMaker starts inference containers as ``IMAGE serve``: the model is in /opt/ml/model."""
    serve(root / "model", name="model", host="0.0.0.0", port=sagemaker_port())
