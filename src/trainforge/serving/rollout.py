"""Rollout policies: which model versions an endpoint serves, with what share of requests, and how that
changes when a version is deployed, promoted or rolled back. One owner for both modes: the SageMaker and
the local deployers only apply the ``EndpointRecord`` these functions return.

    replace   the new version takes all traffic, the former champion leaves the endpoint
    canary    SageMaker's deployment guardrails move the traffic: a slice of the new fleet's capacity first,
              the stack's alarms rolling it back; the former champion stays at weight 0, a standby that a
              rollback returns to in seconds, until the next deployment (locally: at once, no alarms)
    ab        the new version is a second production variant with ``challenger_percent`` of requests
    shadow    the new version is a shadow variant receiving a copy of ``shadow_percent`` of requests; its
              answers are recorded, never returned

Blue/green guardrails need the new configuration to keep the old one's variant names
(https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html), which is why a
canary keeps the former champion's variant (at weight 0) and only then shifts.

Every deployment is first *staged*: the candidate joins the endpoint as a variant with no traffic, so
the parity check can call it by name before any request reaches it; then it is *released* under the
policy, or *unstaged* when parity fails (the endpoint returns to exactly what it served before).

Variants are named after versions (``v3``), so the ``x-Amzn-Invoked-Production-Variant`` of a response
and every captured request say which version answered.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from trainforge.contracts import ModelVersion, utcnow
from trainforge.errors import UsageError
from trainforge.spec import RolloutSpec
from trainforge.store import join, open_store

Policy = Literal["replace", "canary", "ab", "shadow"]


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="VariantName: 'v' + the registry version")
    version: str
    run_id: str
    model_uri: str
    #: the registry's handle on the version: the model package ARN in AWS, None for MLflow
    arn: str | None = None
    #: production variants: relative share of requests; a shadow variant: percent of requests copied to it
    weight: int = Field(100, ge=0, le=100)
    shadow: bool = False

    def with_weight(self, weight: int, *, shadow: bool = False) -> Variant:
        return self.model_copy(update={"weight": weight, "shadow": shadow})


class EndpointRecord(BaseModel):
    """What an endpoint serves and which version is champion: ``deployments/NAME.json`` under the
    artifacts root in AWS, under the workspace locally."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    policy: Policy = "replace"
    variants: tuple[Variant, ...]
    #: the version the registry alias ``champion`` names; None until a first deployment passed parity
    champion: Variant | None = None
    #: an ab or shadow candidate under test
    challenger: Variant | None = None
    #: former champions, newest last: what rollback returns to
    previous: tuple[Variant, ...] = ()
    #: a candidate joined at no traffic for the parity check, and what the endpoint served before it
    staged: Variant | None = None
    before: tuple[Variant, ...] = ()
    #: percent of requests written to the capture (0: off)
    capture_percent: int = Field(0, ge=0, le=100)
    #: what each variant runs on (SageMaker; "" locally)
    instance_type: str = ""
    #: instances behind each variant (SageMaker)
    instance_count: int = Field(1, ge=1)
    updated: datetime = Field(default_factory=utcnow)

    def production(self) -> list[Variant]:
        return [v for v in self.variants if not v.shadow]

    def shadows(self) -> list[Variant]:
        return [v for v in self.variants if v.shadow]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise UsageError(f"endpoint {self.name} has no variant {name}; it serves {[v.name for v in self.variants]}")

    def layout_key(self) -> str:
        """A digest of what serves (variants, weights, shadows, capture, instances): equal keys, equal
        endpoints."""
        layout = {
            "variants": [v.model_dump(mode="json") for v in self.variants],
            "capture": self.capture_percent,
            "instances": [self.instance_type, self.instance_count],
        }
        return hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:12]


def variant_of(version: ModelVersion) -> Variant:
    return Variant(
        name=f"v{version.version}",
        version=version.version,
        run_id=version.run_id,
        model_uri=version.model_uri,
        arn=version.arn,
    )


def _touch(record: EndpointRecord, **changes: Any) -> EndpointRecord:
    return record.model_copy(update={**changes, "updated": utcnow()})


def stage(
    record: EndpointRecord | None,
    candidate: Variant,
    name: str,
    capture_percent: int,
    instance_type: str = "",
    instance_count: int = 1,
) -> EndpointRecord:
    """The candidate beside the champion at no traffic. A new endpoint serves the candidate alone (no
    traffic has anywhere else to go); an experiment under way (challenger) is superseded."""
    if record is None or record.champion is None:
        return EndpointRecord(
            name=name,
            variants=(candidate.with_weight(100),),
            staged=candidate,
            capture_percent=capture_percent,
            instance_type=instance_type,
            instance_count=instance_count,
            before=record.variants if record else (),
        )
    if candidate.name in {v.name for v in record.variants} | {record.champion.name}:
        raise UsageError(f"version {candidate.version} is already deployed to {name}")
    return _touch(
        record,
        variants=(record.champion.with_weight(100), candidate.with_weight(0)),
        staged=candidate,
        before=record.variants,
        capture_percent=capture_percent,
        instance_type=instance_type or record.instance_type,
        instance_count=instance_count,
    )


def unstage(record: EndpointRecord) -> EndpointRecord:
    """Parity failed: the endpoint serves exactly what it served before the candidate joined."""
    return _touch(record, variants=record.before, staged=None, before=())


def release(record: EndpointRecord, rollout: RolloutSpec) -> tuple[EndpointRecord, list[Variant]]:
    """Parity passed: traffic moves to the staged candidate under the policy. Returns the new record and the
    versions it takes out of service (a superseded challenger), for the registry."""
    candidate = record.staged
    if candidate is None:
        raise UsageError(f"endpoint {record.name} has no staged version to release")
    champion = record.champion
    retired = [record.challenger] if record.challenger else []
    common = {"staged": None, "before": (), "policy": rollout.policy}
    if champion is None or rollout.policy in ("replace", "canary"):
        previous = (*record.previous, champion) if champion else record.previous
        variants: tuple[Variant, ...] = (candidate.with_weight(100),)
        if champion is not None and rollout.policy == "canary":  # the staged layout's names, new weights
            variants = (champion.with_weight(0), candidate.with_weight(100))
        return _touch(
            record, variants=variants, champion=candidate, challenger=None, previous=previous, **common
        ), retired
    if rollout.policy == "ab":
        share = rollout.challenger_percent
        variants = (champion.with_weight(100 - share), candidate.with_weight(share))
    else:
        variants = (champion.with_weight(100), candidate.with_weight(rollout.shadow_percent, shadow=True))
    return _touch(record, variants=variants, challenger=candidate, **common), retired


def promote(record: EndpointRecord) -> EndpointRecord:
    """The challenger becomes champion and takes all traffic. An ab challenger already serves, so only the
    weights move (the former champion stays at zero until the next deployment, ready for a rollback); a
    shadow one becomes the production variant."""
    challenger, champion = record.challenger, record.champion
    if challenger is None or champion is None:
        raise UsageError(f"endpoint {record.name} has no challenger to promote (deploy with rollout ab or shadow)")
    if any(v.name == challenger.name and not v.shadow for v in record.variants):
        variants: tuple[Variant, ...] = (champion.with_weight(0), challenger.with_weight(100))
    else:
        variants = (challenger.with_weight(100),)
    return _touch(
        record, variants=variants, champion=challenger, challenger=None, previous=(*record.previous, champion)
    )


def rollback(record: EndpointRecord) -> tuple[EndpointRecord, Variant]:
    """Take the newest version out: a challenger leaves the endpoint, or else the champion gives way to
    the previous one. Returns the new record and the version rolled back."""
    champion = record.champion
    if champion is None:
        raise UsageError(f"endpoint {record.name} has no champion yet")
    if record.challenger is not None:
        out = record.challenger
        if out.name in {v.name for v in record.production()}:  # ab: its traffic returns, no new instances
            variants = tuple(v.with_weight(100 if v.name == champion.name else 0) for v in record.production())
        else:  # shadow: it leaves the endpoint
            variants = (champion.with_weight(100),)
        return _touch(record, variants=variants, challenger=None), out
    if not record.previous:
        raise UsageError(f"endpoint {record.name} has no earlier version to roll back to")
    back = record.previous[-1]
    if any(v.name == back.name for v in record.production()):  # still on the endpoint: only weights move
        variants = tuple(v.with_weight(100 if v.name == back.name else 0) for v in record.production())
    else:
        variants = (back.with_weight(100),)
    return _touch(record, variants=variants, champion=back, previous=record.previous[:-1]), champion


def same_variants(before: EndpointRecord | None, after: EndpointRecord) -> bool:
    """The same variant names, production and shadow, and the same capture: at most the weights differ
    (SageMaker can then move traffic without new instances, or shift it through its guardrails)."""
    if before is None or before.capture_percent != after.capture_percent:
        return False
    served = [sorted((v.name, v.shadow) for v in record.variants) for record in (before, after)]
    return served[0] == served[1]


def config_name(record: EndpointRecord) -> str:
    """An endpoint configuration's name, from what it serves: the same layout names the same (immutable)
    configuration, so re-applying one reuses it. At most 63 characters."""
    digest = record.layout_key()[:8]
    stem = "-".join([record.name, *(v.name for v in record.variants)])
    return f"{stem[: 63 - len(digest) - 1].rstrip('-')}-{digest}"


# --- where records live ---------------------------------------------------------------------------------


def record_uri(root: str, name: str) -> str:
    return join(root, "deployments", f"{name}.json")


def load_record(root: str, name: str) -> EndpointRecord | None:
    uri = record_uri(root, name)
    store = open_store(uri)
    if not store.exists(uri):
        return None
    return EndpointRecord.model_validate_json(store.read_bytes(uri))


def save_record(root: str, record: EndpointRecord) -> None:
    uri = record_uri(root, record.name)
    open_store(uri).write_bytes(uri, record.model_dump_json(indent=2).encode(), "application/json")


class EndpointDeployer(Protocol):
    """What a rollout needs from a place that hosts endpoints (SageMaker, or this machine)."""

    def current(self, name: str) -> EndpointRecord | None: ...

    def apply(self, record: EndpointRecord, before: EndpointRecord | None, *, canary: bool = False) -> str:
        """Make the endpoint serve ``record`` (``canary``: shift traffic through the deployment guardrails)
        and save it; returns the endpoint's status (InService, Creating, Updating)."""

    def invoke(self, name: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request to one variant, by name (SageMaker's TargetVariant), answered as JSON."""

    def url(self, name: str) -> str | None:
        """Where clients reach the endpoint directly (None where they go through an AWS API)."""
