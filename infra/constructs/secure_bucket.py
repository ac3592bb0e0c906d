"""SecureBucket: KMS-encrypted, versioned, public access blocked, TLS only, access-logged."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


class SecureBucket(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        access_logs: s3.IBucket,
        bucket_name: str | None = None,
        event_bridge: bool = False,
        noncurrent_retention_days: int | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        rules = []
        if noncurrent_retention_days:
            rules.append(
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(noncurrent_retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id.lower()}/",
            event_bridge_enabled=event_bridge,
            lifecycle_rules=rules or None,
            removal_policy=removal_policy,
        )
