"""The synthesized stacks: secure defaults asserted on the CloudFormation itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import ROOT


def template(synthesized, name: str) -> Template:
    return Template.from_stack(synthesized[name])


def resources(synthesized, name: str, kind: str) -> dict:
    return template(synthesized, name).find_resources(kind)


def test_every_bucket_is_versioned_private_tls_only_and_kms_encrypted_except_the_access_log_target(synthesized):
    buckets = resources(synthesized, "data", "AWS::S3::Bucket")
    assert len(buckets) == 3
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        if logical_id.startswith("AccessLogs"):
            assert sse["SSEAlgorithm"] == "AES256"  # S3 access logs cannot be delivered to SSE-KMS buckets
        else:
            assert sse["SSEAlgorithm"] == "aws:kms" and "KMSMasterKeyID" in sse
            assert props["LoggingConfiguration"]["DestinationBucketName"]
    policies = resources(synthesized, "data", "AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in statements
        )
    notifications = next(iter(resources(synthesized, "data", "Custom::S3BucketNotifications").values()))["Properties"]
    assert notifications["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    assert notifications["BucketName"]["Ref"].startswith("DataBucket")


def test_key_rotation_and_table(synthesized):
    template(synthesized, "data").has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template(synthesized, "data").has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
            "Replicas": [Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )


@pytest.mark.parametrize("stack", ["training", "pipeline"])
def test_every_log_group_is_encrypted_with_retention(synthesized, stack):
    groups = resources(synthesized, stack, "AWS::Logs::LogGroup")
    assert groups
    for group in groups.values():
        assert "KmsKeyId" in group["Properties"] and group["Properties"]["RetentionInDays"] >= 365


def test_functions_have_dlq_concurrency_tracing_vpc(synthesized):
    functions = {
        k: f
        for k, f in resources(synthesized, "pipeline", "AWS::Lambda::Function").items()
        if "Handler" in f["Properties"] and f["Properties"]["Handler"] == "app.handler"
    }
    assert len(functions) == 9
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14" and props["TracingConfig"] == {"Mode": "Active"}
        assert props["DeadLetterConfig"]["TargetArn"] and props["ReservedConcurrentExecutions"] > 0
        assert props["VpcConfig"]["SubnetIds"] and "KmsKeyArn" in props and len(props["Layers"]) == 1
    for queue in resources(synthesized, "pipeline", "AWS::SQS::Queue").values():
        assert "KmsMasterKeyId" in queue["Properties"]


def test_state_machine_definition_is_the_asl_file_with_every_substitution(synthesized):
    machine = next(iter(resources(synthesized, "pipeline", "AWS::StepFunctions::StateMachine").values()))
    props = machine["Properties"]
    source = (ROOT / "statemachines" / "training_pipeline.asl.json").read_text()
    # CloudFormation substitutes at deploy time: the definition asset is the file itself...
    asset = Path(synthesized["outdir"]) / f"asset.{props['DefinitionS3Location']['Key']}"
    assert asset.read_text() == source
    # ...and every ${Name} in it has exactly one substitution
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == set(re.findall(r"\$\{(\w+)\}", source))
    assert (
        substitutions["MaxTrainingRuntimeSeconds"] == "432000"
        and substitutions["EvaluationInstanceType"] == "ml.g5.xlarge"
    )
    assert "SageMakerRole" in json.dumps(substitutions["SageMakerRoleArn"]) and "Key" in json.dumps(
        substitutions["KmsKeyArn"]
    )
    assert props["LoggingConfiguration"]["Level"] == "ALL" and props["TracingConfiguration"] == {"Enabled": True}
    assert props["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"


def test_rules_match_jobs_and_datasets_prefixes(synthesized):
    rules = resources(synthesized, "pipeline", "AWS::Events::Rule")
    assert len(rules) == 2
    for rule in rules.values():
        pattern = rule["Properties"]["EventPattern"]
        assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
        assert pattern["detail"]["object"]["key"] == [{"prefix": "jobs/"}, {"prefix": "datasets/"}]
        assert rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]


def _role_statements(synthesized, stack: str, role_prefix: str) -> list[dict]:
    policies = resources(synthesized, stack, "AWS::IAM::Policy")
    return [
        s
        for logical_id, p in policies.items()
        if logical_id.startswith(role_prefix)
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_preventive_deny_on_sagemaker_jobs_and_passrole_only_for_the_sagemaker_role(synthesized):
    statements = _role_statements(synthesized, "pipeline", "TrainingPipelineRole")
    denies = {s["Sid"]: s for s in statements if s["Effect"] == "Deny"}
    assert set(denies) == {
        "DenyWithoutNetworkIsolation",
        "DenyWithoutNetworkIsolationKey",
        "DenyOutsideVpc",
        "DenyWithoutVolumeKmsKey",
        "DenyWithoutInterContainerEncryption",
        "DenyWithoutInterContainerEncryptionKey",
        "DenyOtherInstanceTypes",
    }
    for deny in denies.values():
        assert deny["Action"] == ["sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"]
    assert (
        "ml.trn1.*"
        in denies["DenyOtherInstanceTypes"]["Condition"]["ForAnyValue:StringNotLike"]["sagemaker:InstanceTypes"]
    )
    pass_role = [s for s in statements if s.get("Action") == "iam:PassRole"]
    assert len(pass_role) == 1 and pass_role[0]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert "SageMakerRole" in json.dumps(pass_role[0]["Resource"])


def test_network_has_only_isolated_subnets_and_endpoints(synthesized):
    training = template(synthesized, "training")
    assert not resources(synthesized, "training", "AWS::EC2::NatGateway") and not resources(
        synthesized, "training", "AWS::EC2::InternetGateway"
    )
    endpoints = resources(synthesized, "training", "AWS::EC2::VPCEndpoint")
    services = json.dumps([e["Properties"]["ServiceName"] for e in endpoints.values()])
    for service in (
        "s3",
        "dynamodb",
        "ecr.api",
        "ecr.dkr",
        "logs",
        "sagemaker.api",
        "sagemaker.runtime",
        "sts",
        "kms",
        "states",
        "sns",
    ):
        assert service in services, service
    training.resource_count_is("AWS::EC2::FlowLog", 1)


def test_cfn_lint_reports_no_errors(synthesized):
    files = sorted(str(p) for p in Path(synthesized["outdir"]).glob("*.template.json"))
    assert len(files) == 3
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "error", *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
