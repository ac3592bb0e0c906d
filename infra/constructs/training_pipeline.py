"""TrainingPipeline: the state machine from statemachines/training_pipeline.asl.json, its definition
substitutions, logging ALL to an encrypted log group, X-Ray, and a role that may start SageMaker jobs only
when they are network-isolated, in the VPC, KMS-encrypted, inter-container-encrypted and of an allowed
instance type (a preventive deny, whatever the definition asks for)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

ASL_FILE = Path(__file__).resolve().parents[2] / "statemachines" / "training_pipeline.asl.json"
JOB_ACTIONS = ["sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"]


def guardrail_statements(allowed_instance_types: list[str]) -> list[iam.PolicyStatement]:
    """Deny statements, one per missing control, so any single gap is enough to refuse the job."""
    conditions = {
        "DenyWithoutNetworkIsolation": {"Bool": {"sagemaker:NetworkIsolation": "false"}},
        "DenyWithoutNetworkIsolationKey": {"Null": {"sagemaker:NetworkIsolation": "true"}},
        "DenyOutsideVpc": {"Null": {"sagemaker:VpcSubnets": "true"}},
        "DenyWithoutVolumeKmsKey": {"Null": {"sagemaker:VolumeKmsKey": "true"}},
        "DenyWithoutInterContainerEncryption": {"Bool": {"sagemaker:InterContainerTrafficEncryption": "false"}},
        "DenyWithoutInterContainerEncryptionKey": {"Null": {"sagemaker:InterContainerTrafficEncryption": "true"}},
        "DenyOtherInstanceTypes": {"ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": allowed_instance_types}},
    }
    return [
        iam.PolicyStatement(sid=sid, effect=iam.Effect.DENY, actions=JOB_ACTIONS, resources=["*"], conditions=condition)
        for sid, condition in conditions.items()
    ]


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        substitutions: dict[str, str],
        sagemaker_role: iam.IRole,
        allowed_instance_types: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=key, retention=logs.RetentionDays.ONE_YEAR, removal_policy=RemovalPolicy.RETAIN
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="TrainForge training pipeline",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=substitutions,
            role=self.role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            timeout=Duration.days(30),
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key),
        )
        job_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RunJobs",
                actions=[
                    *JOB_ACTIONS,
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:AddTags",
                ],
                resources=[f"{job_arn}:training-job/*", f"{job_arn}:processing-job/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PassOnlyTheSageMakerRole",
                actions=["iam:PassRole"],
                resources=[sagemaker_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        for statement in guardrail_statements(allowed_instance_types):
            self.role.add_to_policy(statement)
        key.grant_encrypt_decrypt(self.role)
