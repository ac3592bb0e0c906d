"""What the rules may ask of the account: a role's trusted services, the objects under a prefix."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tests.twin.context import MotoRuleContext


@pytest.fixture
def ctx(aws_env):
    with mock_aws():
        yield MotoRuleContext("us-east-1")


def test_a_roles_trusted_service_principals(ctx):
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["sagemaker.amazonaws.com", "bedrock.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            },
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": ["sts:TagSession"]},
            {"Effect": "Deny", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
        ],
    }
    arn = boto3.client("iam").create_role(RoleName="r", Path="/service/", AssumeRolePolicyDocument=json.dumps(policy))[
        "Role"
    ]["Arn"]

    assert ctx.role_trust_principals(arn) == {"sagemaker.amazonaws.com", "bedrock.amazonaws.com"}
    assert ctx.role_trust_principals("arn:aws:iam::123456789012:role/missing") is None
    assert ctx.role_trust_principals("arn:aws:iam::999999999999:role/service/r") is None  # same name, other account


def test_the_objects_under_a_prefix(ctx):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    for key in ("model/config.json", "model/w.safetensors", "other/x"):
        s3.put_object(Bucket="bucket", Key=key, Body=b"x")

    assert sorted(ctx.s3_keys("s3://bucket/model/")) == [
        "s3://bucket/model/config.json",
        "s3://bucket/model/w.safetensors",
    ]
    assert ctx.s3_keys("s3://no-such-bucket/model/") == []
