"""The CDK app: the one place that reads context. `npx cdk synth` / `cdk deploy` run `python -m infra.app`.

Context (cdk.json or -c key=value): account, region, prefix, allowed_instance_types (comma-separated
SageMaker types, wildcards allowed), vpc_id (an existing VPC with isolated subnets), enable_mlflow,
artifacts_retention_days, neuron_image (build the Trainium image; default: when an ``ml.trn*`` type is
allowed), reserved_concurrency (reserve that many concurrent executions for each function; default: none).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import aws_cdk as cdk

from infra.nag import ReviewedPack, apply_nag
from infra.stacks.data import DataStack
from infra.stacks.pipeline import PipelineStack
from infra.stacks.training import TrainingStack

DEFAULT_INSTANCE_TYPES = "ml.trn1.*,ml.trn2.*,ml.g5.*,ml.g6.*,ml.g6e.*,ml.p4d.*,ml.p5.*,ml.m5.*"
TRAINIUM = "ml.trn"


class Stacks(NamedTuple):
    data: DataStack
    training: TrainingStack
    pipeline: PipelineStack
    nag_packs: list[ReviewedPack]


def _boolean(value: object, default: bool) -> bool:
    """cdk.json gives JSON booleans, ``-c key=value`` gives strings."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"context value {value!r} must be true or false")
    return text == "true"


@dataclass(frozen=True)
class Options:
    """What the context asks for, typed and checked once."""

    prefix: str
    allowed_instance_types: list[str]
    #: build training_image/Dockerfile.neuron; without it no ml.trn* type is allowed
    neuron_image: bool
    #: concurrent executions reserved for each function; None reserves nothing. Lambda keeps 100 of the
    #: account's quota unreserved and new accounts start with 10-50, so a reservation per function fails
    #: `cdk deploy` there (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)
    reserved_concurrency: int | None
    vpc_id: str | None
    enable_mlflow: bool
    artifacts_retention_days: int

    @classmethod
    def from_context(cls, context: Callable[[str], object]) -> Options:
        allowed = [
            t.strip() for t in str(context("allowed_instance_types") or DEFAULT_INSTANCE_TYPES).split(",") if t.strip()
        ]
        neuron_image = _boolean(context("neuron_image"), default=any(t.startswith(TRAINIUM) for t in allowed))
        if not neuron_image:  # no image can run on Trainium: no job may ask for it
            allowed = [t for t in allowed if not t.startswith(TRAINIUM)]
        if not allowed:
            raise ValueError("allowed_instance_types leaves no SageMaker instance type")
        reserved = context("reserved_concurrency")
        reserved_concurrency = None if reserved in (None, "") else int(str(reserved))
        if reserved_concurrency is not None and reserved_concurrency < 1:
            raise ValueError(f"reserved_concurrency must be a positive integer, got {reserved!r}")
        return cls(
            prefix=str(context("prefix") or "trainforge"),
            allowed_instance_types=allowed,
            neuron_image=neuron_image,
            reserved_concurrency=reserved_concurrency,
            vpc_id=str(context("vpc_id")) if context("vpc_id") else None,
            enable_mlflow=_boolean(context("enable_mlflow"), default=False),
            artifacts_retention_days=int(str(context("artifacts_retention_days") or 365)),
        )


def build(app: cdk.App) -> Stacks:
    context = app.node.try_get_context
    options = Options.from_context(context)
    prefix = options.prefix
    env = cdk.Environment(
        account=context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=context("region") or os.environ.get("CDK_DEFAULT_REGION"),
    )
    data = DataStack(
        app, f"{prefix}-data", prefix=prefix, env=env, artifacts_retention_days=options.artifacts_retention_days
    )
    training = TrainingStack(
        app,
        f"{prefix}-training",
        prefix=prefix,
        env=env,
        key=data.key,
        vpc_id=options.vpc_id,
        enable_mlflow=options.enable_mlflow,
        neuron_image=options.neuron_image,
    )
    pipeline = PipelineStack(
        app,
        f"{prefix}-pipeline",
        prefix=prefix,
        env=env,
        key=data.key,
        table=data.table,
        vpc=training.vpc,
        lambda_security_group=training.lambda_security_group,
        jobs_security_group=training.jobs_security_group,
        subnet_ids=training.isolated_subnet_ids,
        sagemaker_role=training.role,
        bedrock_role=training.bedrock_role,
        image_uri=training.image.image_uri,
        neuron_image_uri=training.neuron_image.image_uri if training.neuron_image else "",
        allowed_instance_types=options.allowed_instance_types,
        reserved_concurrency=options.reserved_concurrency,
    )
    for stack in (data, training, pipeline):
        cdk.Tags.of(stack).add("trainforge:component", stack.stack_name)
    return Stacks(data, training, pipeline, apply_nag(app, data, training, pipeline))


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
