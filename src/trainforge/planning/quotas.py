"""The SageMaker quotas a run needs, by the names Service Quotas gives them, so that an empty one is found
before the run rather than by a ResourceLimitExceeded after training.

SageMaker's instance quotas are per type and per use: "ml.g5.2xlarge for training job usage", "... for spot
training job usage", "... for processing job usage", "... for endpoint usage"
(https://docs.aws.amazon.com/general/latest/gr/sagemaker.html#limits_sagemaker; many default to 0 for
accelerated types in a new account). Reading them is the caller's (``pipeline.plan_step``, through Service
Quotas' ListServiceQuotas); this module only names them and judges what was read.
"""

from __future__ import annotations

from collections.abc import Mapping

from trainforge.contracts import QuotaHint
from trainforge.planning.trials import trials
from trainforge.spec import DeploySpec, JobSpec

SERVICE_CODE = "sagemaker"
#: the variants an endpoint serves between deployments, by rollout policy (``serving/rollout.py``): replace
#: leaves the new version alone; canary keeps the former champion at weight 0, a standby for rollback; ab
#: and shadow keep champion and challenger
SERVING_VARIANTS = {"replace": 1, "canary": 2, "ab": 2, "shadow": 2}
#: every deployment first stages the candidate beside the champion, at no traffic, for the parity check
STAGED_VARIANTS = 2


def endpoint_instances(deploy: DeploySpec) -> int:
    """The most instances of ``deploy.instance_type`` an endpoint holds at once while a version is deployed
    to it. An update to another endpoint configuration is blue/green: SageMaker provisions the new fleet,
    every variant of the new configuration, before it retires the old one
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html). Staging is
    such an update, from the variants served between deployments to the staged two; the release of a
    canary (guardrails over the staged names) or a shadow (the candidate becomes a shadow variant) is
    another of the same size, replace's (two variants to one) is smaller and ab's moves weights only.
    Each variant runs ``deploy.instance_count`` instances."""
    return (SERVING_VARIANTS[deploy.rollout.policy] + STAGED_VARIANTS) * deploy.instance_count


def needed_quotas(spec: JobSpec, evaluation_type: str) -> list[QuotaHint]:
    """The quotas of the training job (each of a tuning run's parallel trials is one), the evaluation job and
    the endpoint, with the instances each needs (the endpoint's during a deployment: :func:`endpoint_instances`)."""
    compute = spec.compute
    usage = "spot training job usage" if compute.spot else "training job usage"
    training = compute.instance_count * trials(spec, local=False).at_once
    hints = [
        QuotaHint(name=f"{compute.instance_type} for {usage}", needed=training),
        QuotaHint(name=f"{evaluation_type} for processing job usage", needed=1),
    ]
    if spec.deploy.target == "sagemaker_endpoint":
        hints.append(
            QuotaHint(name=f"{spec.deploy.instance_type} for endpoint usage", needed=endpoint_instances(spec.deploy))
        )
    return hints


def judged(hints: list[QuotaHint], listed: Mapping[str, tuple[str, float]]) -> list[QuotaHint]:
    """``listed``: quota name -> (code, value), as Service Quotas lists them for SageMaker."""
    found = []
    for hint in hints:
        if hint.name not in listed:
            found.append(hint)
            continue
        code, value = listed[hint.name]
        status = "ok" if value >= hint.needed else "too_low"
        found.append(hint.model_copy(update={"code": code, "value": value, "status": status}))
    return found
