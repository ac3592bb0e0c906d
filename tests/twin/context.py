"""What the rules may ask about the account a request is made in, answered from moto's state."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from tests.twin import storage


class MotoRuleContext:
    """The ``RuleContext`` of tests.twin.rules, over moto IAM, S3 and SageMaker in the request's region."""

    def __init__(self, region: str) -> None:
        self.iam = storage.client("iam", region)
        self.s3 = storage.client("s3", region)
        self.sagemaker = storage.client("sagemaker", region)

    def role_trust_principals(self, role_arn: str) -> set[str] | None:
        """The service principals the role's trust policy allows to assume it; None: no such role."""
        try:
            role = self.iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except ClientError:
            return None
        if role["Arn"] != role_arn:
            return None
        document: Any = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(document, str):
            try:
                document = json.loads(unquote(document))
            except json.JSONDecodeError:
                return set()
        statements = document.get("Statement", []) if isinstance(document, dict) else []
        principals: set[str] = set()
        for statement in [statements] if isinstance(statements, dict) else statements:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement.get("Effect") != "Allow" or not any(a.startswith("sts:AssumeRole") for a in actions):
                continue
            principal = statement.get("Principal", {})
            services = principal.get("Service", []) if isinstance(principal, dict) else []
            principals.update([services] if isinstance(services, str) else services)
        return principals

    def s3_keys(self, uri: str) -> list[str]:
        """``s3://`` URIs of the objects under the prefix ``uri`` (none when the bucket does not exist)."""
        bucket, _ = storage.split(uri)
        try:
            return [f"s3://{bucket}/{key}" for key in storage.keys(self.s3, uri)]
        except ClientError:
            return []

    def endpoint_config(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.sagemaker.describe_endpoint_config(EndpointConfigName=name))
        except ClientError:
            return None

    def endpoint_config_name(self, endpoint: str) -> str | None:
        try:
            return str(self.sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
        except ClientError:
            return None
