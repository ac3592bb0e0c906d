"""PipelineStack: the Lambda functions (one shared core layer) and what each may do, the state machine, the
EventBridge rules that turn uploads into validations and runs, the retraining schedule group and the role
EventBridge Scheduler invokes retrain as, the run-outcome topic, alarms and a dashboard."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.core_layer import CoreLayer
from infra.constructs.guardrails import endpoint_guardrails, job_guardrails, volume_key_grants
from infra.constructs.pipeline_function import PipelineFunction
from infra.constructs.training_pipeline import TrainingPipeline
from infra.stacks.data import import_buckets
from trainforge.pipeline.continuous_handlers import JOB_SUFFIX

#: function name -> the ASL substitution that names it (None: not called by the state machine)
FUNCTIONS: dict[str, str | None] = {
    "validate_upload": None,
    "admit_run": None,
    "retrain": None,
    "sync_schedule": None,
    "plan_validation": "PlanValidationFunctionArn",
    "validate_shard": "ValidateShardFunctionArn",
    "merge_validation": "MergeValidationFunctionArn",
    "plan_run": "PlanRunFunctionArn",
    "prepare_training": "PrepareTrainingFunctionArn",
    "prepare_refit": "PrepareRefitFunctionArn",
    "prepare_evaluation": "PrepareEvaluationFunctionArn",
    "read_evaluation": "ReadEvaluationFunctionArn",
    "register_model": "RegisterModelFunctionArn",
    "deploy_model": "DeployModelFunctionArn",
    "record_failure": "RecordFailureFunctionArn",
    "record_outcome": "RecordOutcomeFunctionArn",
    # CheckParity: after Deploy's endpoint is InService, parity, then the traffic moves
    "check_parity": "CheckParityFunctionArn",
    # promote / rollback, invoked by `trainforge promote|rollback --aws PREFIX` as PREFIX-rollout
    "rollout": None,
    # deploy.continuous_evaluation: its schedule starts the job, SageMaker's job-end event records it
    "continuous_evaluation": None,
    "record_continuous_evaluation": None,
}
#: stream data: a whole uploaded object, one shard (at most 256 MiB by default), or all shards' fingerprints
LONG_RUNNING = {"validate_upload", "retrain", "validate_shard", "merge_validation"}
#: read the user's jobs/ and datasets/ (everything else reads TrainForge's own objects only)
READ_USER_DATA = (
    "validate_upload",
    "admit_run",
    "retrain",
    "sync_schedule",
    "plan_validation",
    "validate_shard",
    "prepare_training",
)
#: touch nothing in S3 but the run folders (the two prepare steps also describe the tuning and training jobs)
RUNS_ONLY = ("prepare_refit", "prepare_evaluation", "record_outcome")
#: put endpoints in place (their records under deployments/ in the artifacts bucket); a failed continuous
#: evaluation may roll its challenger back
ENDPOINT_FUNCTIONS = ("deploy_model", "check_parity", "rollout", "record_continuous_evaluation")
#: functions named PREFIX-NAME: what EventBridge Scheduler or an operator's CLI invokes by name
NAMED = ("retrain", "rollout", "continuous_evaluation")
#: SageMaker writes these log groups for its jobs (record_failure names the failed job's stream)
JOB_LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs")


def _pass_sagemaker_role(sagemaker_role: iam.IRole) -> iam.PolicyStatement:
    """What creating SageMaker models or jobs that run as the stack's SageMaker role needs."""
    return iam.PolicyStatement(
        sid="PassTheSageMakerRole",
        actions=["iam:PassRole"],
        resources=[sagemaker_role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


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
        bedrock_role: iam.IRole,
        image_uri: str,
        neuron_image_uri: str,
        allowed_instance_types: list[str],
        reserved_concurrency: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        data_bucket, artifacts_bucket = import_buckets(self, prefix, key)
        self.topic = sns.Topic(
            self, "RunOutcomes", master_key=key, enforce_ssl=True, display_name="TrainForge run outcomes"
        )
        # the topic's policy replaces SNS's default one, so the account's alarms must be let in by name
        # (https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:*"
                    },
                },
            )
        )
        schedule_group = f"{prefix}-retrain"
        self.alarm_prefix = prefix
        self.schedule_group = scheduler.CfnScheduleGroup(self, "RetrainSchedules", name=schedule_group)
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": self.account}}
            ),
            description="EventBridge Scheduler: invoke the retrain function for job schedules",
        )
        # retrain is named, so that every function can be told its ARN without a reference back to it (the
        # state machine's functions would otherwise depend on retrain, which depends on the state machine)
        retrain_name = f"{prefix}-retrain"
        layer = CoreLayer(self, "CoreLayer").layer
        environment = {
            "TRAINFORGE_DATA_URI": f"s3://{data_bucket.bucket_name}",
            "TRAINFORGE_ARTIFACTS_URI": f"s3://{artifacts_bucket.bucket_name}",
            "TRAINFORGE_TABLE_NAME": table.table_name,
            "TRAINFORGE_IMAGE_URI": image_uri,
            "TRAINFORGE_NEURON_IMAGE_URI": neuron_image_uri,
            "TRAINFORGE_SAGEMAKER_ROLE_ARN": sagemaker_role.role_arn,
            "TRAINFORGE_BEDROCK_ROLE_ARN": bedrock_role.role_arn,
            "TRAINFORGE_KMS_KEY_ARN": key.key_arn,
            "TRAINFORGE_SUBNET_IDS": ",".join(subnet_ids),
            "TRAINFORGE_SECURITY_GROUP_IDS": jobs_security_group.security_group_id,
            # a canary's rollback alarms are created for its endpoint's variant when it shifts, named PREFIX-...
            "TRAINFORGE_ALARM_PREFIX": prefix,
            "TRAINFORGE_SCHEDULE_GROUP": schedule_group,
            "TRAINFORGE_SCHEDULER_ROLE_ARN": self.scheduler_role.role_arn,
            "TRAINFORGE_RETRAIN_FUNCTION_ARN": self.format_arn(
                service="lambda",
                resource="function",
                resource_name=retrain_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            "TRAINFORGE_CONTINUOUS_EVALUATION_FUNCTION_ARN": self.format_arn(
                service="lambda",
                resource="function",
                resource_name=f"{prefix}-continuous_evaluation",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
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
                reserved_concurrency=reserved_concurrency,
                function_name=f"{prefix}-{name}" if name in NAMED else None,
            )
            for name in FUNCTIONS
        }
        self._grant(key, data_bucket, artifacts_bucket, table, sagemaker_role, bedrock_role, allowed_instance_types)
        substitutions = {sub: self.functions[name].function.function_arn for name, sub in FUNCTIONS.items() if sub}
        substitutions["TopicArn"] = self.topic.topic_arn
        substitutions["ArtifactsBucketName"] = artifacts_bucket.bucket_name
        self.pipeline = TrainingPipeline(
            self,
            "TrainingPipeline",
            name=f"{prefix}-training-pipeline",
            key=key,
            substitutions=substitutions,
            sagemaker_role=sagemaker_role,
            allowed_instance_types=allowed_instance_types,
        )
        for name, sub in FUNCTIONS.items():
            if sub:
                self.functions[name].function.grant_invoke(self.pipeline.role)
        self.topic.grant_publish(self.pipeline.role)
        self._grant_validation_map(artifacts_bucket)
        for name in ("admit_run", "retrain"):
            self.pipeline.state_machine.grant_start_execution(self.functions[name].function)
            self.functions[name].function.add_environment(
                "TRAINFORGE_STATE_MACHINE_ARN", self.pipeline.state_machine.state_machine_arn
            )
        self._rules(data_bucket)
        self.functions["retrain"].function.grant_invoke(self.scheduler_role)
        self.functions["continuous_evaluation"].function.grant_invoke(self.scheduler_role)
        self._alarms_and_dashboard(prefix)

    def _grant(
        self,
        key: kms.IKey,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        table: dynamodb.ITableV2,
        sagemaker_role: iam.IRole,
        bedrock_role: iam.IRole,
        allowed_instance_types: list[str],
    ) -> None:
        """Each function gets what its step does. Run folders are the audit trail: read and add, never delete."""
        f = {name: fn.function for name, fn in self.functions.items()}
        for name in READ_USER_DATA:
            data_bucket.grant_read(f[name], "jobs/*")
            data_bucket.grant_read(f[name], "datasets/*")
        for name, fn in f.items():
            if name not in RUNS_ONLY:
                artifacts_bucket.grant_read(fn, "base-models/*")
            artifacts_bucket.grant_read(fn, "runs/*")
            artifacts_bucket.grant_put(fn, "runs/*")
            key.grant_encrypt_decrypt(fn)
        artifacts_bucket.grant_read(f["validate_upload"], "reports/*")
        artifacts_bucket.grant_put(f["validate_upload"], "reports/*")
        table.grant_read_write_data(f["admit_run"])
        arn = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        f["record_failure"].add_to_role_policy(
            iam.PolicyStatement(
                sid="StopFailedJobs",
                actions=[
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    # a failed tuning job: its latest trial (for the logs); a running one is stopped
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                ],
                resources=[f"{arn}:training-job/*", f"{arn}:processing-job/*", f"{arn}:hyper-parameter-tuning-job/*"],
            )
        )
        # List* have no resource type: record_failure finds the run's jobs still running by name
        f["record_failure"].add_to_role_policy(
            iam.PolicyStatement(
                sid="FindRunningJobs",
                actions=[
                    "sagemaker:ListTrainingJobs",
                    "sagemaker:ListProcessingJobs",
                    "sagemaker:ListHyperParameterTuningJobs",
                ],
                resources=["*"],
            )
        )
        f["record_failure"].add_to_role_policy(
            iam.PolicyStatement(
                sid="FindJobLogStreams",
                actions=["logs:DescribeLogStreams"],
                resources=[
                    f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{group}:*"
                    for group in JOB_LOG_GROUPS
                ],
            )
        )
        self._grant_plan(f["plan_run"], artifacts_bucket)
        # the model's location, as the training job reports it; a tuned run's best training job and its trials
        # (prepare_refit: the best trial's settings and how long it trained, for the refit)
        for name in ("prepare_refit", "prepare_evaluation"):
            f[name].add_to_role_policy(
                iam.PolicyStatement(
                    sid="ReadTrainingJob",
                    actions=[
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:DescribeHyperParameterTuningJob",
                        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    ],
                    resources=[f"{arn}:training-job/*", f"{arn}:hyper-parameter-tuning-job/*"],
                )
            )
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
                resources=[f"{arn}:model-package-group/*", f"{arn}:model-package/*"],
            )
        )
        for name in ENDPOINT_FUNCTIONS:
            artifacts_bucket.grant_read(f[name], "deployments/*")
            artifacts_bucket.grant_put(f[name], "deployments/*")
            self._grant_endpoints(f[name], name, key, sagemaker_role, allowed_instance_types)
        self._grant_imports(f["deploy_model"], bedrock_role)
        self._grant_continuous_evaluation(
            f["continuous_evaluation"], data_bucket, artifacts_bucket, key, sagemaker_role, allowed_instance_types
        )
        f["record_continuous_evaluation"].add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadEvaluationJobs",
                actions=["sagemaker:DescribeProcessingJob"],
                resources=[f"{arn}:processing-job/*"],
            )
        )
        for name in ("admit_run", "sync_schedule"):
            self._grant_schedules(f[name], self.schedule_group.ref)

    def _grant_plan(self, plan: lambda_.IFunction, artifacts_bucket: s3.IBucket) -> None:
        """The plan reads the platform team's price file, if any, and the account's SageMaker quotas: the
        applied values, and the defaults of the quotas never changed (which the applied list leaves out).
        Neither List action has a resource type: they can only be granted on "*"
        (https://docs.aws.amazon.com/service-authorization/latest/reference/list_servicequotas.html)."""
        artifacts_bucket.grant_read(plan, "config/prices.json")
        plan.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadSageMakerQuotas",
                actions=["servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"],
                resources=["*"],
            )
        )

    def _grant_validation_map(self, artifacts_bucket: s3.IBucket) -> None:
        """The Validate map is a Distributed Map: it reads its items from the plan's manifest, runs them as
        child executions of the state machine itself, and writes its results to the artifacts bucket
        (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html)."""
        role, pipeline = self.pipeline.role, self.pipeline
        artifacts_bucket.grant_read(role, "runs/*/validation/manifest.json")
        artifacts_bucket.grant_put(role, "validation-results/*")
        role.add_to_policy(
            iam.PolicyStatement(sid="RunTheValidationMap", actions=["states:StartExecution"], resources=[pipeline.arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="FollowTheValidationMap",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[
                    self.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{pipeline.name}/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )

    def _grant_endpoints(
        self,
        function: lambda_.IFunction,
        name: str,
        key: kms.IKey,
        sagemaker_role: iam.IRole,
        allowed_instance_types: list[str],
    ) -> None:
        """SageMaker models, endpoint configs and endpoints, within the guardrails. deploy_model and
        check_parity create the models of new versions (passing the SageMaker role); check_parity asks the
        staged variant the parity prompts and deletes a first endpoint that failed them; check_parity and
        rollout move the model packages' aliases and approval."""
        arn = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        actions = [
            "sagemaker:DescribeModel",
            "sagemaker:CreateEndpointConfig",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:CreateEndpoint",
            "sagemaker:UpdateEndpoint",
            "sagemaker:UpdateEndpointWeightsAndCapacities",
            "sagemaker:DescribeEndpoint",
            "sagemaker:AddTags",
        ]
        if name in ("deploy_model", "check_parity"):
            actions.append("sagemaker:CreateModel")
        if name == "check_parity":
            actions += ["sagemaker:InvokeEndpoint", "sagemaker:DeleteEndpoint"]
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DeployEndpoints",
                actions=actions,
                resources=[f"{arn}:model/*", f"{arn}:endpoint-config/*", f"{arn}:endpoint/*"],
            )
        )
        if name in ("check_parity", "rollout", "record_continuous_evaluation"):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="MoveModelAliases",
                    actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
                    resources=[f"{arn}:model-package/*"],
                )
            )
        if name == "check_parity":  # a canary's release creates the alarms that can roll it back
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="CanaryRollbackAlarms",
                    actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
                    resources=[
                        self.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"{self.alarm_prefix}-*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )
        if "sagemaker:CreateModel" in actions:
            function.add_to_role_policy(_pass_sagemaker_role(sagemaker_role))
        for statement in [*volume_key_grants(key), *endpoint_guardrails(allowed_instance_types)]:
            function.add_to_role_policy(statement)

    def _grant_continuous_evaluation(
        self,
        function: lambda_.IFunction,
        data_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        key: kms.IKey,
        sagemaker_role: iam.IRole,
        allowed_instance_types: list[str],
    ) -> None:
        """The job's inputs: the spec, the endpoint's record and earlier evaluations, its captured traffic,
        each variant's CloudWatch figures (GetMetricData has no resource type: "*",
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html); the
        job itself, as the SageMaker role, within the jobs' guardrails."""
        arn = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        data_bucket.grant_read(function, "jobs/*")
        artifacts_bucket.grant_read(function, "deployments/*")
        artifacts_bucket.grant_read(function, "capture/*")
        # writes only deployments/NAME/evaluations/; a narrower grant would be a wildcard pattern of its own
        artifacts_bucket.grant_put(function, "deployments/*")
        function.add_to_role_policy(
            iam.PolicyStatement(sid="ReadServingMetrics", actions=["cloudwatch:GetMetricData"], resources=["*"])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="StartEvaluationJobs",
                actions=["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                resources=[f"{arn}:processing-job/*"],
            )
        )
        function.add_to_role_policy(_pass_sagemaker_role(sagemaker_role))
        for statement in [*volume_key_grants(key), *job_guardrails(allowed_instance_types)]:
            function.add_to_role_policy(statement)

    def _grant_imports(self, deploy: lambda_.IFunction, bedrock_role: iam.IRole) -> None:
        """Bedrock Custom Model Import jobs, as the stack's import role."""
        bedrock = f"arn:{self.partition}:bedrock:{self.region}:{self.account}"
        deploy.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadImports",
                actions=["bedrock:GetModelImportJob", "bedrock:GetImportedModel"],
                resources=[f"{bedrock}:model-import-job/*", f"{bedrock}:imported-model/*"],
            )
        )
        # CreateModelImportJob has no resource type: it can only be granted on "*"
        # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html)
        deploy.add_to_role_policy(
            iam.PolicyStatement(sid="ImportModels", actions=["bedrock:CreateModelImportJob"], resources=["*"])
        )
        deploy.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassTheBedrockImportRole",
                actions=["iam:PassRole"],
                resources=[bedrock_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
            )
        )

    def _grant_schedules(self, function: lambda_.IFunction, schedule_group: str) -> None:
        """admit_run debounces a multi-file upload with a one-time schedule, and sync_schedule keeps each
        job's recurring schedule in line with its spec: schedules in the stack's group that invoke retrain
        as the scheduler role."""
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RetrainSchedules",
                actions=[
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:GetSchedule",
                    "scheduler:DeleteSchedule",
                ],
                resources=[
                    self.format_arn(service="scheduler", resource="schedule", resource_name=f"{schedule_group}/*")
                ],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassTheSchedulerRole",
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )

    def _rules(self, data_bucket: s3.IBucket) -> None:
        def on_objects(
            name: str, prefixes: list[str], function: str, kinds: tuple[str, ...] = ("Object Created",)
        ) -> None:
            rule = events.Rule(
                self,
                name,
                description=f"{' or '.join(kinds)} under {', '.join(prefixes)} -> {function}",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=list(kinds),
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

        on_objects("ValidateUploads", ["jobs/", "datasets/"], "validate_upload")
        on_objects("AdmitRuns", ["jobs/", "datasets/"], "admit_run")
        # a deleted spec (a delete marker, or its last version removed) must delete its schedule: S3 sends
        # "Object Deleted" for both (https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html)
        on_objects("SyncSchedules", ["jobs/"], "sync_schedule", ("Object Created", "Object Deleted"))
        # a continuous evaluation job's end; SageMaker sends the event at each status change, and the
        # function ignores jobs whose report is not in this stack's bucket
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html; suffix
        # matching: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html)
        record = self.functions["record_continuous_evaluation"]
        ended = events.Rule(
            self,
            "RecordContinuousEvaluations",
            description="a continuous evaluation job (NAME-STAMP-ce) ended -> record_continuous_evaluation",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Processing Job State Change"],
                detail={
                    "ProcessingJobName": [{"suffix": JOB_SUFFIX}],
                    "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
                },
            ),
        )
        ended.add_target(
            targets.LambdaFunction(
                record.function,
                dead_letter_queue=record.dead_letters,
                retry_attempts=4,
                max_event_age=Duration.hours(6),
            )
        )

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
