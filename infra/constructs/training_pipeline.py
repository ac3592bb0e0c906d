"""TrainingPipeline: the state machine from statemachines/training_pipeline.asl.json, its definition
substitutions (function ARNs and the topic), logging ALL to an encrypted log group, X-Ray, and a role that
runs SageMaker training, processing and tuning jobs through the .sync integrations only when they are
network-isolated, in the VPC, inter-container-encrypted, of an allowed instance type and, on EBS-only
types, KMS-encrypted (preventive denies, whatever the definition asks for)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.guardrails import JOB_ACTIONS, job_guardrails, volume_key_grants

ASL_FILE = Path(__file__).resolve().parents[2] / "statemachines" / "training_pipeline.asl.json"
#: Step Functions' .sync integrations watch SageMaker jobs through these managed EventBridge rules
#: (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html)
SYNC_RULES = (
    "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "StepFunctionsGetEventsForSageMakerTuningJobsRule",
)


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        key: kms.IKey,
        substitutions: dict[str, str],
        sagemaker_role: iam.IRole,
        allowed_instance_types: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        #: named, so that its own role may start and follow its child executions (the Distributed Map)
        #: without a reference to the state machine, which depends on that role's policy
        self.name = name
        self.arn = stack.format_arn(
            service="states", resource="stateMachine", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
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
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=substitutions,
            role=self.role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            timeout=Duration.days(30),
            # by ARN: given the key itself, CDK adds kms:Decrypt* for delivery.logs.amazonaws.com to its policy
            # without aws:SourceAccount; DataStack's key policy carries that statement with the conditions
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(
                kms.Key.from_key_arn(self, "EncryptionKey", key.key_arn)
            ),
        )
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        # what https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html gives a .sync job task
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RunJobs",
                actions=[
                    *JOB_ACTIONS,
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    "sagemaker:AddTags",
                ],
                resources=[f"{arn}:training-job/*", f"{arn}:processing-job/*", f"{arn}:hyper-parameter-tuning-job/*"],
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(sid="ReadJobTags", actions=["sagemaker:ListTags"], resources=["*"]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SyncJobEvents",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/{rule}" for rule in SYNC_RULES
                ],
            )
        )
        # aws-sdk integrations: the deploy step's endpoint and Bedrock import job, polled to completion
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PollDeployments",
                actions=["sagemaker:DescribeEndpoint", "bedrock:GetModelImportJob"],
                resources=[
                    f"{arn}:endpoint/*",
                    f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:model-import-job/*",
                ],
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
        for statement in [*volume_key_grants(key), *job_guardrails(allowed_instance_types)]:
            self.role.add_to_policy(statement)
        key.grant_encrypt_decrypt(self.role)
