"""DataStack: the stateful part. A customer-managed key, the data bucket (the user's; EventBridge on),
the artifacts bucket (TrainForge's), the access-log bucket, and the runs/idempotency table.
Logical IDs here never change once released: renaming one would replace a bucket or a table."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.secure_bucket import SecureBucket


def bucket_name(prefix: str, role: str) -> str:
    """Deterministic, globally unique names: other stacks address the buckets by name, so their policies
    carry plain ARNs instead of cross-stack exports."""
    return f"{prefix}-{role}-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def import_buckets(scope: Construct, prefix: str, key: kms.IKey) -> tuple[s3.IBucket, s3.IBucket]:
    """The data and artifacts buckets, addressed by name from another stack (with the key they use)."""
    data = s3.Bucket.from_bucket_attributes(
        scope, "DataBucket", bucket_name=bucket_name(prefix, "data"), encryption_key=key
    )
    artifacts = s3.Bucket.from_bucket_attributes(
        scope, "ArtifactsBucket", bucket_name=bucket_name(prefix, "artifacts"), encryption_key=key
    )
    return data, artifacts


class DataStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, prefix: str, artifacts_retention_days: int = 365, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{prefix}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            description="TrainForge: data, artifacts, logs, queues, topic, table",
        )
        self._allow_services()
        # S3 server access logs can only be delivered to a bucket with SSE-S3 (not SSE-KMS)
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(730), noncurrent_version_expiration=Duration.days(90))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.data_bucket = SecureBucket(
            self,
            "Data",
            key=self.key,
            access_logs=self.log_bucket,
            event_bridge=True,
            bucket_name=bucket_name(prefix, "data"),
        ).bucket
        self.artifacts_bucket = SecureBucket(
            self,
            "Artifacts",
            key=self.key,
            access_logs=self.log_bucket,
            bucket_name=bucket_name(prefix, "artifacts"),
            noncurrent_retention_days=artifacts_retention_days,
        ).bucket
        self.table = dynamodb.TableV2(
            self,
            "Runs",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self.key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expiration",
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _allow_services(self) -> None:
        """The AWS services that encrypt with the key on the account's behalf, each only for this account
        (aws:SourceAccount, against the confused deputy:
        https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html)."""
        account = {"StringEquals": {"aws:SourceAccount": self.account}}
        encrypt_decrypt = ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]

        def allow(sid: str, service: str, actions: list[str], conditions: dict[str, dict[str, str]]) -> None:
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=actions,
                    resources=["*"],
                    conditions=conditions,
                )
            )

        # CloudWatch Logs names the log group in the encryption context instead
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html)
        allow(
            "LogGroups",
            f"logs.{self.region}.amazonaws.com",
            ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                }
            },
        )
        allow("TopicAndQueues", "sns.amazonaws.com", encrypt_decrypt, account)
        allow("StateMachine", "states.amazonaws.com", encrypt_decrypt, account)
        allow("EventBridge", "events.amazonaws.com", encrypt_decrypt, account)
        # the state machine's log delivery (vended logs; https://docs.aws.amazon.com/step-functions/latest/dg/encryption-at-rest.html)
        allow(
            "StateMachineLogDelivery",
            "delivery.logs.amazonaws.com",
            ["kms:Decrypt"],
            {**account, "ArnLike": {"aws:SourceArn": f"arn:{self.partition}:logs:{self.region}:{self.account}:*"}},
        )
        # alarms publish to the encrypted run-outcome topic: without this no alarm ever notifies
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html)
        allow("AlarmNotifications", "cloudwatch.amazonaws.com", ["kms:Decrypt", "kms:GenerateDataKey*"], account)
