"""The registry protocol and the approval policy every implementation shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from trainforge.contracts import EvaluationReport, ModelVersion

Approval = Literal["Approved", "PendingManualApproval", "Rejected"]


def approval_for(gate_passed: bool, policy: Literal["auto", "manual"]) -> Approval:
    """A failed gate is always Rejected; a passed one is Approved unless the spec asks for a person."""
    if not gate_passed:
        return "Rejected"
    return "Approved" if policy == "auto" else "PendingManualApproval"


@dataclass(frozen=True)
class Registration:
    run_id: str
    name: str
    model_uri: str
    evaluation: EvaluationReport
    approval: Approval
    bom_uri: str
    params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: local files logged as artifacts (report.json, report.html, bom.json, dataset report)
    artifacts: list[str] = field(default_factory=list)
    report_uri: str | None = None
    #: the SageMaker serving container (Image, ModelDataSource, Environment) a model package records
    container: dict[str, Any] | None = None


class ModelRegistry(Protocol):
    def register(self, registration: Registration) -> ModelVersion:
        """Record the run and add a model version with its metrics, reports and bill of materials."""

    def set_approval(self, version: ModelVersion, approval: Approval) -> ModelVersion: ...

    def versions(self, name: str) -> list[ModelVersion]: ...
