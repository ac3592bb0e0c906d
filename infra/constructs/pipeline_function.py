"""PipelineFunction: a Lambda from functions/NAME on the shared core layer, with what a review expects:
a dead-letter queue (KMS), X-Ray, an encrypted log group with retention, a place in the VPC's isolated
subnets, and reserved concurrency when the deployment asks for it (none by default: see
``infra.app.Options.reserved_concurrency``)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.core_layer import RUNTIME

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


class PipelineFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        layer: lambda_.ILayerVersion,
        key: kms.IKey,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        environment: dict[str, str],
        timeout: Duration = Duration.minutes(5),
        memory_mb: int = 1024,
        reserved_concurrency: int | None = None,
        function_name: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=key, retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="app.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / name)),
            layers=[layer],
            timeout=timeout,
            memory_size=memory_mb,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letters,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": "trainforge",
                "POWERTOOLS_METRICS_NAMESPACE": "TrainForge",
            },
            environment_encryption=key,
            log_group=self.log_group,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[security_group],
        )
