"""The CDK app: the one place that reads context. `npx cdk synth` / `cdk deploy` run `python -m infra.app`.

Context (cdk.json or -c key=value): account, region, prefix, allowed_instance_types (comma-separated
SageMaker types, wildcards allowed), vpc_id (an existing VPC with isolated subnets), enable_mlflow,
artifacts_retention_days.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import aws_cdk as cdk

from infra.nag import ReviewedPack, apply_nag
from infra.stacks.data import DataStack
from infra.stacks.pipeline import PipelineStack
from infra.stacks.training import TrainingStack

DEFAULT_INSTANCE_TYPES = "ml.trn1.*,ml.trn2.*,ml.g5.*,ml.g6.*,ml.g6e.*,ml.p4d.*,ml.p5.*,ml.m5.*"


class Stacks(NamedTuple):
    data: DataStack
    training: TrainingStack
    pipeline: PipelineStack
    nag_packs: list[ReviewedPack]


def build(app: cdk.App) -> Stacks:
    context = app.node.try_get_context
    prefix = context("prefix") or "trainforge"
    env = cdk.Environment(
        account=context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=context("region") or os.environ.get("CDK_DEFAULT_REGION"),
    )
    allowed = [
        t.strip() for t in str(context("allowed_instance_types") or DEFAULT_INSTANCE_TYPES).split(",") if t.strip()
    ]
    data = DataStack(
        app,
        f"{prefix}-data",
        prefix=prefix,
        env=env,
        artifacts_retention_days=int(context("artifacts_retention_days") or 365),
    )
    training = TrainingStack(
        app,
        f"{prefix}-training",
        prefix=prefix,
        env=env,
        key=data.key,
        vpc_id=context("vpc_id"),
        enable_mlflow=str(context("enable_mlflow")).lower() == "true",
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
        image_uri=training.image.image_uri,
        allowed_instance_types=allowed,
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
