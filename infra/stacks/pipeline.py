"""PipelineStack: the Lambda functions (one shared core layer), the state machine, the EventBridge rules
that turn uploads into validations and runs, the retraining schedule group, the run-outcome topic, alarms
and a dashboard."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.core_layer import CoreLayer
from infra.constructs.pipeline_function import PipelineFunction
from infra.constructs.training_pipeline import TrainingPipeline
from infra.stacks.data import import_buckets

#: function name -> the ASL substitution that names it (None: not called by the state machine)
FUNCTIONS: dict[str, str | None] = {
    "validate_upload": None,
    "admit_run": None,
    "retrain": None,
    "validate_run": "ValidateRunFunctionArn",
    "prepare_training": "PrepareTrainingFunctionArn",
    "read_evaluation": "ReadEvaluationFunctionArn",
    "register_model": "RegisterModelFunctionArn",
    "deploy_model": "DeployModelFunctionArn",
    "record_failure": "RecordFailureFunctionArn",
}
LONG_RUNNING = {"validate_upload", "validate_run", "retrain"}  # stream whole datasets


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        key: kms.IKey,
        table: dynamodb.ITableV2,
        vpc: ec2.IVpc,
        lambda_security_group: ec2.ISecurityGroup,
        jobs_security_group: ec2.ISecurityGroup,
        subnet_ids: list[str],
        sagemaker_role: iam.IRole,
        image_uri: str,
        allowed_instance_types: list[str],
        evaluation_instance_type: str = "ml.g5.xlarge",
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        data_bucket, artifacts_bucket = import_buckets(self, prefix, key)
        self.topic = sns.Topic(
            self, "RunOutcomes", master_key=key, enforce_ssl=True, display_name="TrainForge run outcomes"
        )
        layer = CoreLayer(self, "CoreLayer").layer
        environment = {
            "TRAINFORGE_DATA_URI": f"s3://{data_bucket.bucket_name}",
            "TRAINFORGE_ARTIFACTS_URI": f"s3://{artifacts_bucket.bucket_name}",
            "TRAINFORGE_TABLE_NAME": table.table_name,
            "TRAINFORGE_IMAGE_URI": image_uri,
            "TRAINFORGE_SAGEMAKER_ROLE_ARN": sagemaker_role.role_arn,
            "TRAINFORGE_KMS_KEY_ARN": key.key_arn,
            "TRAINFORGE_SUBNET_IDS": ",".join(subnet_ids),
            "TRAINFORGE_SECURITY_GROUP_IDS": jobs_security_group.security_group_id,
        }
        self.functions = {
            name: PipelineFunction(
                self,
                name.title().replace("_", ""),
                name=name,
                layer=layer,
                key=key,
                vpc=vpc,
                security_group=lambda_security_group,
                environment=environment,
                timeout=Duration.minutes(15 if name in LONG_RUNNING else 5),
                memory_mb=3008 if name in LONG_RUNNING else 1024,
            )
            for name in FUNCTIONS
        }
        self._grant(key, data_bucket, artifacts_bucket, table, sagemaker_role)
        substitutions = {sub: self.functions[name].function.function_arn for name, sub in FUNCTIONS.items() if sub}
        substitutions |= {
            "TopicArn": self.topic.topic_arn,
            "SageMakerRoleArn": sagemaker_role.role_arn,
            "KmsKeyArn": key.key_arn,
            "SubnetIds": ",".join(subnet_ids),
            "SecurityGroupIds": jobs_security_group.security_group_id,
            "EvaluationInstanceType": evaluation_instance_type,
            "MaxTrainingRuntimeSeconds": str(5 * 86400),
            "MaxTrainingWaitSeconds": str(10 * 86400),
            "MaxEvaluationRuntimeSeconds": str(6 * 3600),
        }
        self.pipeline = TrainingPipeline(
            self,
            "TrainingPipeline",
            key=key,
            substitutions=substitutions,
            sagemaker_role=sagemaker_role,
            allowed_instance_types=allowed_instance_types,
        )
        for name, sub in FUNCTIONS.items():
            if sub:
                self.functions[name].function.grant_invoke(self.pipeline.role)
        self.topic.grant_publish(self.pipeline.role)
        self.pipeline.state_machine.grant_start_execution(self.functions["admit_run"].function)
        self.pipeline.state_machine.grant_start_execution(self.functions["retrain"].function)
        for name in ("admit_run", "retrain"):
            self.functions[name].function.add_environment(
                "TRAINFORGE_STATE_MACHINE_ARN", self.pipeline.state_machine.state_machine_arn
            )
        self._rules(data_bucket)
        self.schedule_group = scheduler.CfnScheduleGroup(self, "RetrainSchedules", name=f"{prefix}-retrain")
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="EventBridge Scheduler: invoke the retrain function for job schedules",
        )
        self.functions["retrain"].function.grant_invoke(self.scheduler_role)
        self._alarms_and_dashboard(prefix)

    def _grant(
        self,
        key: kms.IKey,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        table: dynamodb.ITableV2,
        sagemaker_role: iam.IRole,
    ) -> None:
        f = {name: fn.function for name, fn in self.functions.items()}
        for name in ("validate_upload", "admit_run", "retrain", "validate_run", "prepare_training"):
            data_bucket.grant_read(f[name], "jobs/*")
            data_bucket.grant_read(f[name], "datasets/*")
        for fn in f.values():
            artifacts_bucket.grant_read(fn, "base-models/*")
            artifacts_bucket.grant_read_write(fn, "runs/*")
        artifacts_bucket.grant_read_write(f["validate_upload"], "reports/*")
        table.grant_read_write_data(f["admit_run"])
        f["record_failure"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob"],
                resources=[f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:training-job/*"],
            )
        )
        model_arn = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        f["register_model"].add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModelPackageGroup",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:ListModelPackages",
                ],
                resources=[f"{model_arn}:model-package-group/*", f"{model_arn}:model-package/*"],
            )
        )
        f["deploy_model"].add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "bedrock:CreateModelImportJob",
                ],
                resources=[
                    f"{model_arn}:model/*",
                    f"{model_arn}:endpoint-config/*",
                    f"{model_arn}:endpoint/*",
                    f"arn:{self.partition}:bedrock:{self.region}:{self.account}:model-import-job/*",
                    f"arn:{self.partition}:bedrock:{self.region}:{self.account}:imported-model/*",
                ],
            )
        )
        f["deploy_model"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[sagemaker_role.role_arn],
                conditions={
                    "StringEquals": {"iam:PassedToService": ["sagemaker.amazonaws.com", "bedrock.amazonaws.com"]}
                },
            )
        )
        for fn in f.values():
            key.grant_encrypt_decrypt(fn)

    def _rules(self, data_bucket: s3.IBucket) -> None:
        def object_created(name: str, prefixes: list[str], function: str) -> None:
            rule = events.Rule(
                self,
                name,
                description=f"Object Created under {', '.join(prefixes)} -> {function}",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail={
                        "bucket": {"name": [data_bucket.bucket_name]},
                        "object": {"key": [{"prefix": prefix} for prefix in prefixes]},
                    },
                ),
            )
            rule.add_target(
                targets.LambdaFunction(
                    self.functions[function].function,
                    dead_letter_queue=self.functions[function].dead_letters,
                    retry_attempts=4,
                    max_event_age=Duration.hours(6),
                )
            )

        object_created("ValidateUploads", ["jobs/", "datasets/"], "validate_upload")
        object_created("AdmitRuns", ["jobs/", "datasets/"], "admit_run")

    def _alarms_and_dashboard(self, prefix: str) -> None:
        alarm_action = actions.SnsAction(self.topic)
        machine = self.pipeline.state_machine
        failed = cloudwatch.Alarm(
            self,
            "FailedExecutions",
            metric=machine.metric_failed(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            alarm_description="A training run failed (failure.json in its run folder says why)",
        )
        failed.add_alarm_action(alarm_action)
        for name, fn in self.functions.items():
            dlq = cloudwatch.Alarm(
                self,
                f"{name}DeadLetters",
                metric=fn.dead_letters.metric_approximate_number_of_messages_visible(),
                threshold=1,
                evaluation_periods=1,
                alarm_description=f"{name}: events that could not be processed",
            )
            errors = cloudwatch.Alarm(
                self,
                f"{name}Errors",
                metric=fn.function.metric_errors(period=Duration.minutes(5)),
                threshold=1,
                evaluation_periods=1,
                alarm_description=f"{name}: function errors",
            )
            dlq.add_alarm_action(alarm_action)
            errors.add_alarm_action(alarm_action)
        loss = cloudwatch.Metric(
            namespace="/aws/sagemaker/TrainingJobs",
            metric_name="train:loss",
            statistic="Average",
            period=Duration.minutes(1),
        )
        latency = cloudwatch.Metric(
            namespace="AWS/SageMaker", metric_name="ModelLatency", statistic="p90", period=Duration.minutes(5)
        )
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{prefix}-pipeline")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Runs", left=[machine.metric_started(), machine.metric_succeeded(), machine.metric_failed()]
            ),
            cloudwatch.GraphWidget(title="Run duration", left=[machine.metric_time()]),
            cloudwatch.GraphWidget(title="Training loss", left=[loss]),
            cloudwatch.GraphWidget(title="Endpoint latency (p90)", left=[latency]),
        )
