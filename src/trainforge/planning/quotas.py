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
from trainforge.spec import JobSpec

SERVICE_CODE = "sagemaker"


def needed_quotas(spec: JobSpec, evaluation_type: str) -> list[QuotaHint]:
    """The quotas of the training job, the evaluation job and the endpoint, with the instances each needs.
    An endpoint's blue/green update, or a second variant beside the first, runs another instance: a quota of
    1 deploys the first version only."""
    compute = spec.compute
    usage = "spot training job usage" if compute.spot else "training job usage"
    hints = [
        QuotaHint(name=f"{compute.instance_type} for {usage}", needed=compute.instance_count),
        QuotaHint(name=f"{evaluation_type} for processing job usage", needed=1),
    ]
    if spec.deploy.target == "sagemaker_endpoint":
        hints.append(QuotaHint(name=f"{spec.deploy.instance_type} for endpoint usage", needed=1))
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
