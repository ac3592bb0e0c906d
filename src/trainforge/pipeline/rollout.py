"""Deploying, promoting and rolling back a model version, in both modes: the rollout policy
(``serving.rollout``) says what the endpoint serves, the deployer makes it so, the parity check stands
between a staged version and its traffic, and the registry's alias follows what the endpoint serves.

Locally ``deploy`` does it all in one call. In AWS each step is its own Lambda, because SageMaker needs
minutes between them: ``deploy_model`` stages (``stage_version``), the state machine waits for InService,
``check_parity`` checks and releases or unstages (``after_parity``), the state machine waits again.
``promote`` and ``rollback`` are the same functions behind ``trainforge promote|rollback`` and the
``rollout`` Lambda.

The registry alias: MLflow's ``champion`` (and ``challenger``) aliases locally; in AWS each model
package's ``trainforge:alias`` metadata (champion, challenger, previous, rolled-back) and its approval
(a version rolled back or failing parity is Rejected).
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from trainforge.aws.sagemaker_requests import update_model_package_alias
from trainforge.contracts import Deployment, ModelVersion
from trainforge.errors import ParityFailed
from trainforge.pipeline import parity
from trainforge.serving.rollout import (
    EndpointDeployer,
    EndpointRecord,
    Variant,
    promote,
    release,
    rollback,
    stage,
    unstage,
    variant_of,
)
from trainforge.spec import JobSpec, RolloutSpec


class Aliases(Protocol):
    def move(self, record: EndpointRecord, rejected: list[Variant]) -> None:
        """Point the registry at what ``record`` serves; mark ``rejected`` versions as such."""


class MLflowAliases:
    """``models:/NAME@champion`` is the version the endpoint's production traffic goes to (or, during an
    experiment, the incumbent), ``@challenger`` the version under test."""

    def __init__(self, registry: Any) -> None:
        self.client = registry.client

    def _alias(self, name: str, alias: str, variant: Variant | None) -> None:
        from mlflow.exceptions import MlflowException

        if variant is not None:
            self.client.set_registered_model_alias(name, alias, variant.version)
            return
        with contextlib.suppress(MlflowException):  # there was none
            self.client.delete_registered_model_alias(name, alias)

    def move(self, record: EndpointRecord, rejected: list[Variant]) -> None:
        for variant in rejected:
            self.client.set_model_version_tag(record.name, variant.version, "approval", "Rejected")
        self._alias(record.name, "champion", record.champion)
        self._alias(record.name, "challenger", record.challenger)


class SageMakerAliases:
    """Each model package's place in the rollout, in its metadata, and its approval."""

    def __init__(self, client: Any = None) -> None:
        import boto3

        self.client = client or boto3.client("sagemaker")

    def _set(self, variant: Variant, alias: str, approval: str | None = None) -> None:
        if variant.arn is None:
            return
        package = self.client.describe_model_package(ModelPackageName=variant.arn)
        metadata = dict(package.get("CustomerMetadataProperties") or {})
        status = approval or package["ModelApprovalStatus"]
        if metadata.get("trainforge:alias") == alias and status == package["ModelApprovalStatus"]:
            return
        self.client.update_model_package(**update_model_package_alias(variant.arn, alias, metadata, status))

    def move(self, record: EndpointRecord, rejected: list[Variant]) -> None:
        for variant in rejected:
            self._set(variant, "rolled-back", "Rejected")
        if record.previous:
            self._set(record.previous[-1], "previous")
        if record.challenger is not None:
            self._set(record.challenger, "challenger")
        if record.champion is not None:
            self._set(record.champion, "champion", "Approved")


def deployment(
    record: EndpointRecord, run_id: str, target: str, status: str, arn: str | None = None, url: str | None = None
) -> Deployment:
    return Deployment(
        run_id=run_id,
        target=target,  # type: ignore[arg-type]
        endpoint_name=record.name,
        url=url,
        model_arn=arn,
        traffic={v.name + (" (shadow)" if v.shadow else ""): v.weight for v in record.variants},
        status=status,
    )


def stage_version(
    version: ModelVersion, spec: JobSpec, deployer: EndpointDeployer, instance_type: str = ""
) -> tuple[EndpointRecord, str]:
    """The new version joins the endpoint with no traffic (a new endpoint: alone). Returns the record and
    the endpoint's status."""
    before = deployer.current(spec.name)
    if before is not None and before.staged is not None and before.staged.version == version.version:
        # a retried Deploy (the state machine retries a Lambda error) whose first attempt staged it already:
        # applying the same record again changes nothing
        return before, deployer.apply(before, before)
    staged = stage(
        before,
        variant_of(version),
        spec.name,
        spec.deploy.capture_percent,
        instance_type,
        spec.deploy.instance_count,
    )
    return staged, deployer.apply(staged, before)


def after_parity(
    record: EndpointRecord,
    rollout: RolloutSpec,
    report: parity.ParityReport,
    deployer: EndpointDeployer,
    aliases: Aliases,
    report_uri: str,
) -> tuple[EndpointRecord, str]:
    """Release the staged version under the policy, or, when parity failed, put the endpoint back as it
    was, reject the version and raise ParityFailed naming the report."""
    candidate = record.staged
    assert candidate is not None, "after_parity needs a staged version"
    if not report.passed:
        restored = unstage(record)
        deployer.apply(restored, record)
        aliases.move(restored, [candidate])
        first = "; ".join(report.problems[:3])
        raise ParityFailed(
            f"endpoint {record.name} variant {candidate.name} does not answer as evaluation did, so no traffic "
            f"moved to it: {first} (all {len(report.problems)} problems: {report_uri})"
        )
    released, retired = release(record, rollout)
    status = deployer.apply(released, record, canary=rollout.policy == "canary")
    aliases.move(released, retired)
    return released, status


def check_staged(
    record: EndpointRecord, deployer: EndpointDeployer, artifacts_uri: str, tolerance: float
) -> tuple[parity.ParityReport, str]:
    """The parity check of the staged version against its own evaluation's reference, saved in its run."""
    candidate = record.staged
    assert candidate is not None, "nothing is staged"
    reference = parity.load_reference(artifacts_uri, candidate.run_id)
    report = parity.check_parity(deployer, record.name, candidate.name, reference, tolerance)
    return report, parity.save_report(artifacts_uri, candidate.run_id, report)


def deploy(
    version: ModelVersion, spec: JobSpec, deployer: EndpointDeployer, aliases: Aliases, artifacts_uri: str
) -> Deployment:
    """Stage, check parity, release (local mode: the deployer applies each step before returning)."""
    staged, _ = stage_version(version, spec, deployer)
    report, uri = check_staged(staged, deployer, artifacts_uri, spec.deploy.rollout.parity_tolerance)
    released, status = after_parity(staged, spec.deploy.rollout, report, deployer, aliases, uri)
    return deployment(released, version.run_id, "local", status, url=deployer.url(spec.name))


def promote_endpoint(name: str, deployer: EndpointDeployer, aliases: Aliases) -> tuple[EndpointRecord, str]:
    record = _current(name, deployer)
    promoted = promote(record)
    status = deployer.apply(promoted, record)
    aliases.move(promoted, [])
    return promoted, status


def rollback_endpoint(name: str, deployer: EndpointDeployer, aliases: Aliases) -> tuple[EndpointRecord, str, Variant]:
    record = _current(name, deployer)
    restored, out = rollback(record)
    status = deployer.apply(restored, record)
    aliases.move(restored, [out])
    return restored, status, out


def endpoint_summary(record: EndpointRecord, status: str, rolled_back: Variant | None = None) -> dict[str, Any]:
    """What ``trainforge promote|rollback`` prints (and the rollout Lambda returns)."""
    return {
        "endpoint": record.name,
        "status": status,
        "champion": record.champion.name if record.champion else None,
        "challenger": record.challenger.name if record.challenger else None,
        "traffic": deployment(record, "", "local", status).traffic,
        "rolled_back": rolled_back.name if rolled_back else None,
    }


def _current(name: str, deployer: EndpointDeployer) -> EndpointRecord:
    from trainforge.errors import UsageError

    record = deployer.current(name)
    if record is None:
        raise UsageError(f"no endpoint named {name} has been deployed")
    if record.staged is not None:
        raise UsageError(
            f"endpoint {name} has version {record.staged.version} staged for its parity check; try again after it"
        )
    return record
