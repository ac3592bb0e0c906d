"""TrainingStack: where training runs. A VPC with isolated subnets only (no internet path at all) and the
endpoints the jobs and the Lambdas need, security groups, the SageMaker execution role and the Bedrock
import role (least privilege), the CUDA image and (for Trainium) the Neuron image as ECR assets, and
optionally a SageMaker managed MLflow tracking server."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.stacks.data import import_buckets
from trainforge.custom.frameworks import framework_repositories
from trainforge.custom.own_image import own_repositories

REPO_ROOT = Path(__file__).resolve().parents[2]
#: every AWS API the functions and jobs call, reached through PrivateLink (the subnets have no other route
#: out); tests/infra/test_endpoints.py holds this to the clients the code builds
INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "Bedrock": ec2.InterfaceVpcEndpointAwsService.BEDROCK,
    # the plan reads the account's SageMaker quotas (plan_run): com.amazonaws.REGION.servicequotas
    # (https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html)
    "ServiceQuotas": ec2.InterfaceVpcEndpointAwsService("servicequotas"),
    # admit_run's debounce and sync_schedule's recurring schedules
    # (https://docs.aws.amazon.com/scheduler/latest/UserGuide/vpc-interface-endpoints.html)
    "Scheduler": ec2.InterfaceVpcEndpointAwsService("scheduler"),
}
IMAGE_EXCLUDES = [
    ".git",
    ".venv",
    ".trainforge",
    "cdk.out",
    "node_modules",
    "tests",
    "benchmarks",
    "docs",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
]


class TrainingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        key: kms.IKey,
        vpc_id: str | None = None,
        enable_mlflow: bool = False,
        neuron_image: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        data_bucket, artifacts_bucket = import_buckets(self, prefix, key)
        if vpc_id:
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
        else:
            self.vpc = ec2.Vpc(
                self,
                "Vpc",
                max_azs=2,
                nat_gateways=0,
                restrict_default_security_group=True,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20)
                ],
            )
            flow_logs = logs.LogGroup(self, "FlowLogs", encryption_key=key, retention=logs.RetentionDays.ONE_YEAR)
            self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.jobs_security_group = ec2.SecurityGroup(
            self,
            "JobsSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="SageMaker training and processing containers",
        )
        self.lambda_security_group = ec2.SecurityGroup(
            self,
            "LambdaSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="TrainForge pipeline functions",
        )
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="TrainForge VPC endpoints: HTTPS from the jobs and the functions only",
        )
        for client in (self.jobs_security_group, self.lambda_security_group):
            self.endpoint_security_group.add_ingress_rule(client, ec2.Port.tcp(443), "HTTPS to the VPC endpoints")
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[isolated])
        self.vpc.add_gateway_endpoint("DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[isolated])
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=isolated,
                security_groups=[self.endpoint_security_group],
                private_dns_enabled=True,
                open=False,
            )  # ingress only from the two groups above
        # members of a multi-instance job talk to each other on every protocol: inter-container traffic
        # encryption is IPsec (UDP 500 and ESP, IP protocol 50:
        # https://docs.aws.amazon.com/sagemaker/latest/dg/train-encrypt.html) and EFA needs all traffic within
        # the group (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html#efa-start-security)
        self.jobs_security_group.add_ingress_rule(
            self.jobs_security_group, ec2.Port.all_traffic(), "members of a distributed job (IPsec, EFA)"
        )
        self.jobs_security_group.add_egress_rule(
            self.jobs_security_group, ec2.Port.all_traffic(), "members of a distributed job (IPsec, EFA)"
        )
        # isolated subnets have no route out: HTTPS egress reaches only the interface and S3/DynamoDB gateway endpoints
        self.jobs_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "VPC endpoints (no internet route exists)"
        )
        self.lambda_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "VPC endpoints (no internet route exists)"
        )
        self.image = self._image("TrainingImage", "training_image/Dockerfile")
        #: the Trainium image (torch-neuronx exists only in AWS's Neuron DLC); None when no ml.trn* type is allowed
        self.neuron_image = self._image("NeuronImage", "training_image/Dockerfile.neuron") if neuron_image else None
        self.role = self._execution_role(key, data_bucket, artifacts_bucket, prefix)
        self.isolated_subnet_ids = [
            subnet.subnet_id for subnet in self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnets
        ]
        self.bedrock_role = self._bedrock_import_role(key, artifacts_bucket)
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "QuickstartModels",
            model_package_group_name=f"{prefix}-quickstart",
            model_package_group_description="Models of the quickstart job; every other job's group is created on its first registration",
        )
        if enable_mlflow:
            sagemaker.CfnMlflowTrackingServer(
                self,
                "Mlflow",
                tracking_server_name=f"{prefix}-mlflow",
                artifact_store_uri=artifacts_bucket.s3_url_for_object("mlflow"),
                role_arn=self.role.role_arn,
                automatic_model_registration=False,
            )

    def _image(self, construct_id: str, dockerfile: str) -> ecr_assets.DockerImageAsset:
        """Built and pushed by `cdk deploy` (`cdk synth` needs no Docker)."""
        return ecr_assets.DockerImageAsset(
            self,
            construct_id,
            directory=str(REPO_ROOT),
            file=dockerfile,
            exclude=IMAGE_EXCLUDES,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )

    def _execution_role(
        self, key: kms.IKey, data_bucket: s3.IBucket, artifacts_bucket: s3.IBucket, prefix: str
    ) -> iam.Role:
        """Reads only the data, base-model and run prefixes it needs; adds objects under runs/ and never
        deletes one there (the run folders are the audit trail); endpoints write their data capture under
        capture/, which continuous evaluation reads."""
        role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="TrainForge training, evaluation and endpoint containers",
        )
        data_bucket.grant_read(role, "datasets/*")
        artifacts_bucket.grant_read(role, "base-models/*")
        artifacts_bucket.grant_read(role, "runs/*")
        artifacts_bucket.grant_put(role, "runs/*")
        artifacts_bucket.grant_read(role, "capture/*")
        artifacts_bucket.grant_put(role, "capture/*")
        key.grant_encrypt_decrypt(role)
        for image in (self.image, self.neuron_image):
            if image:
                image.repository.grant_pull(role)
        # endpoints default to AWS's LMI container and custom jobs run AWS's framework containers: cross-account
        # pulls from the Deep Learning Containers registry of the region (its account differs by region), which
        # the role's own policy must allow too: the role is what SageMaker pulls a job's image with
        # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html#sagemaker-CreateTrainingJob-request-RoleArn)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullAwsContainers",
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[
                    f"arn:{self.partition}:ecr:{self.region}:*:repository/{name}"
                    for name in ["djl-inference", *framework_repositories()]
                ],
            )
        )
        # a custom job's container of one's own (custom.image): only this account's and region's repositories
        # named PREFIX-custom/..., the convention Prepare holds custom.image to (trainforge.custom.own_image)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullOwnCustomContainers",
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[
                    self.format_arn(service="ecr", resource="repository", resource_name=own_repositories(prefix))
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRunPrefixes",
                actions=["s3:ListBucket"],
                resources=[data_bucket.bucket_arn, artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["datasets/*", "base-models/*", "runs/*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "TrainForge"]}},
            )
        )
        # a canary's deployment guardrails read the rollback alarms the pipeline creates (named PREFIX-...) as
        # the endpoint's execution role: "Ensure that your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify"
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CanaryRollbackAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                resources=[
                    self.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name=f"{prefix}-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            )
        )
        return role

    def _bedrock_import_role(self, key: kms.IKey, artifacts_bucket: s3.IBucket) -> iam.Role:
        """The service role of Bedrock Custom Model Import: assumed only by this account's import jobs, reads a
        run's model folder (https://docs.aws.amazon.com/bedrock/latest/userguide/model-import-iam-role.html)."""
        role = iam.Role(
            self,
            "BedrockImportRole",
            assumed_by=iam.ServicePrincipal("bedrock.amazonaws.com").with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:bedrock:{self.region}:{self.account}:model-import-job/*"
                    },
                }
            ),
            description="TrainForge: Bedrock Custom Model Import reads a run's model",
        )
        artifacts_bucket.grant_read(role, "runs/*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRuns",
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["runs/*"]}},
            )
        )
        key.grant_decrypt(role)
        # the import job runs in the stack's VPC (CreateModelImportJob vpcConfig): Bedrock creates and tags
        # its network interfaces in the isolated subnets with the jobs' group, as this role
        # (https://docs.aws.amazon.com/bedrock/latest/userguide/vpc-custom-model-import.html)
        ec2_arn = f"arn:{self.partition}:ec2:{self.region}:{self.account}"
        subnets = [f"{ec2_arn}:subnet/{subnet}" for subnet in self.isolated_subnet_ids]
        managed = {"StringEquals": {"aws:RequestTag/BedrockManaged": "true"}}
        for sid, actions, resources, conditions in (
            (
                "DescribeNetwork",
                [
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                ["*"],
                None,
            ),
            ("CreateManagedInterfaces", ["ec2:CreateNetworkInterface"], [f"{ec2_arn}:network-interface/*"], managed),
            (
                "InTheJobsSubnetsAndGroup",
                ["ec2:CreateNetworkInterface"],
                [*subnets, f"{ec2_arn}:security-group/{self.jobs_security_group.security_group_id}"],
                None,
            ),
            (
                "ManageItsInterfaces",
                [
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                ["*"],
                {"ArnEquals": {"ec2:Subnet": subnets}, "StringEquals": {"ec2:ResourceTag/BedrockManaged": "true"}},
            ),
            (
                "TagItsInterfaces",
                ["ec2:CreateTags"],
                [f"{ec2_arn}:network-interface/*"],
                {"StringEquals": {"ec2:CreateAction": "CreateNetworkInterface"}},
            ),
        ):
            role.add_to_policy(
                iam.PolicyStatement(sid=sid, actions=actions, resources=resources, conditions=conditions)
            )
        return role
