"""Process settings, read once at an entry point (CLI, Lambda handler), never at import time."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live. In AWS the CDK stack sets the ``TRAINFORGE_*`` variables on each function."""

    model_config = SettingsConfigDict(env_prefix="TRAINFORGE_", frozen=True, extra="ignore")

    workspace: Path = Path(".trainforge")
    #: root of the user's data (jobs/, datasets/); TrainForge never writes here
    data_uri: str = ""
    #: root of TrainForge's own objects (reports/, runs/, base-models/)
    artifacts_uri: str = ""
    #: DynamoDB table for runs and idempotency records (AWS mode)
    table_name: str = ""
    state_machine_arn: str = ""
    #: MLflow tracking URI; empty means SQLite in the workspace
    mlflow_uri: str = ""
    #: bytes of a data object a validator will read at most (Lambda memory/time guard)
    max_object_bytes: int = 5 * 2**30
    #: local mode: where custom jobs' virtualenvs are cached; None: ~/.cache/trainforge/venvs
    venv_cache: Path | None = None
    # --- AWS mode: set by the PipelineStack on each function ---
    #: the CUDA image (training, evaluation, and endpoints with deploy.engine: trainforge); CPU types too
    image_uri: str = ""
    #: the Trainium image; empty when the stack was deployed without it
    neuron_image_uri: str = ""
    sagemaker_role_arn: str = ""
    #: the role Bedrock Custom Model Import assumes to read a model folder
    bedrock_role_arn: str = ""
    kms_key_arn: str = ""
    #: comma-separated
    subnet_ids: str = ""
    security_group_ids: str = ""
    #: the stack's prefix: a canary's rollback alarms are named PREFIX-ENDPOINT-VARIANT-... ("": no alarms)
    alarm_prefix: str = ""
    #: EventBridge Scheduler: the stack's group, the role it assumes, and the retrain function it invokes
    schedule_group: str = ""
    scheduler_role_arn: str = ""
    retrain_function_arn: str = ""
    #: the function the spec's continuous evaluation schedule invokes
    continuous_evaluation_function_arn: str = ""

    def resolved_data_uri(self) -> str:
        return self.data_uri or (self.workspace.resolve() / "data").as_uri()

    def resolved_artifacts_uri(self) -> str:
        return self.artifacts_uri or (self.workspace.resolve() / "artifacts").as_uri()

    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{(self.workspace.resolve() / 'mlflow.db').as_posix()}"
