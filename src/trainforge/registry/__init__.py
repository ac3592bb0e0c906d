"""Model registries behind one protocol: MLflow (SQLite locally, or any tracking URI such as SageMaker
managed MLflow) and the SageMaker Model Registry. No torch here."""

from trainforge.registry.base import ModelRegistry, Registration, approval_for

__all__ = ("ModelRegistry", "Registration", "approval_for")
