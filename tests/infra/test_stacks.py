"""The synthesized stacks: secure defaults asserted on the CloudFormation itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from infra.stacks.pipeline import FUNCTIONS
from tests.conftest import ROOT
from tests.infra.policies import resources, template


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


def test_functions_have_dlq_tracing_vpc_and_reserve_no_concurrency_by_default(synthesized):
    functions = {
        k: f
        for k, f in resources(synthesized, "pipeline", "AWS::Lambda::Function").items()
        if "Handler" in f["Properties"] and f["Properties"]["Handler"] == "app.handler"
    }
    assert len(functions) == len(FUNCTIONS) == 20
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14" and props["TracingConfig"] == {"Mode": "Active"}
        assert props["DeadLetterConfig"]["TargetArn"] and props["VpcConfig"]["SubnetIds"]
        assert "KmsKeyArn" in props and len(props["Layers"]) == 1
    # defect 2: reserving for 13 functions on a new account (quota 10-50, 100 kept unreserved) fails the deploy
    assert not [
        f
        for f in resources(synthesized, "pipeline", "AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in f["Properties"]
    ]
    for queue in resources(synthesized, "pipeline", "AWS::SQS::Queue").values():
        assert "KmsMasterKeyId" in queue["Properties"]


#: what the state machine is given: function ARNs and the topic; every SageMaker request field comes from the
#: Prepare functions (role, key, network, image, runtime, evaluation instance)
SUBSTITUTIONS = {*(name for name in FUNCTIONS.values() if name), "TopicArn", "ArtifactsBucketName"}


def test_state_machine_definition_is_the_asl_file_with_function_and_topic_substitutions(synthesized):
    machine = next(iter(resources(synthesized, "pipeline", "AWS::StepFunctions::StateMachine").values()))
    props = machine["Properties"]
    source = (ROOT / "statemachines" / "training_pipeline.asl.json").read_text()
    # CloudFormation substitutes at deploy time: the definition asset is the file itself...
    asset = Path(synthesized["outdir"]) / f"asset.{props['DefinitionS3Location']['Key']}"
    assert asset.read_text() == source
    # ...and the stack substitutes exactly the contract's names, each a function of its own or the topic
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == SUBSTITUTIONS
    for name, sub in FUNCTIONS.items():
        if sub:
            assert name.title().replace("_", "") + "Function" in json.dumps(substitutions[sub])
    assert "RunOutcomes" in json.dumps(substitutions["TopicArn"])
    assert "trainforge-artifacts-" in json.dumps(substitutions["ArtifactsBucketName"])  # the map's ResultWriter
    assert props["LoggingConfiguration"]["Level"] == "ALL" and props["TracingConfiguration"] == {"Enabled": True}
    assert props["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert set(re.findall(r"\$\{(\w+)\}", source)) == SUBSTITUTIONS


def test_rules_match_jobs_and_datasets_prefixes(synthesized):
    rules = resources(synthesized, "pipeline", "AWS::Events::Rule")
    assert len(rules) == 4
    (ended,) = [rule for logical_id, rule in rules.items() if logical_id.startswith("RecordContinuousEvaluations")]
    assert ended["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobName": [{"suffix": "-ce"}],
            "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
        },
    }
    for logical_id, rule in rules.items():
        if logical_id.startswith("RecordContinuousEvaluations"):
            continue
        pattern = rule["Properties"]["EventPattern"]
        assert pattern["source"] == ["aws.s3"] and rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]
        if logical_id.startswith("SyncSchedules"):  # a deleted spec must delete its schedule
            assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
            assert pattern["detail"]["object"]["key"] == [{"prefix": "jobs/"}]
        else:
            assert pattern["detail-type"] == ["Object Created"]
            assert pattern["detail"]["object"]["key"] == [{"prefix": "jobs/"}, {"prefix": "datasets/"}]


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


def test_members_of_a_distributed_job_may_exchange_all_traffic_and_nothing_else_may(synthesized):
    # defect 11: inter-container encryption is IPsec (UDP 500, ESP) and EFA needs all traffic
    groups = resources(synthesized, "training", "AWS::EC2::SecurityGroup")
    (group_id,) = [k for k in groups if k.startswith("JobsSecurityGroup")]
    own = {"Fn::GetAtt": [group_id, "GroupId"]}
    rules = [
        (kind, r["Properties"])
        for kind in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")
        for r in resources(synthesized, "training", kind).values()
        if r["Properties"]["GroupId"] == own
    ]
    assert [
        (kind, rule["IpProtocol"], rule.get("SourceSecurityGroupId", rule.get("DestinationSecurityGroupId")))
        for kind, rule in rules
    ] == [
        ("AWS::EC2::SecurityGroupIngress", "-1", own),
        ("AWS::EC2::SecurityGroupEgress", "-1", own),
    ]
    # the group's only other rule: HTTPS out, to the endpoints (the subnets have no other route)
    assert [(e["IpProtocol"], e["FromPort"]) for e in groups[group_id]["Properties"]["SecurityGroupEgress"]] == [
        ("tcp", 443)
    ]
    assert "SecurityGroupIngress" not in groups[group_id]["Properties"]


def key_statements(synthesized) -> list[dict]:
    (key,) = resources(synthesized, "data", "AWS::KMS::Key").values()
    return key["Properties"]["KeyPolicy"]["Statement"]


def test_alarms_can_publish_to_the_encrypted_topic(synthesized):
    # defect 8: CloudWatch encrypts the alarm's message with the topic's key, and the topic's policy lets it in
    (statement,) = [s for s in key_statements(synthesized) if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    (policy,) = resources(synthesized, "pipeline", "AWS::SNS::TopicPolicy").values()
    (publish,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert publish["Effect"] == "Allow" and publish["Action"] == "sns:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert json.dumps(publish["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(
        ':cloudwatch:us-east-1:123456789012:alarm:*"'
    )
    alarms = resources(synthesized, "pipeline", "AWS::CloudWatch::Alarm")
    assert alarms and all("RunOutcomes" in json.dumps(a["Properties"]["AlarmActions"]) for a in alarms.values())


def test_every_service_the_key_trusts_is_held_to_this_account(synthesized):
    # defect 15: a service principal without a condition lets any account's resource use the key through it
    services = [s for s in key_statements(synthesized) if "Service" in s.get("Principal", {})]
    assert {s["Principal"]["Service"] for s in services} == {
        "logs.us-east-1.amazonaws.com",
        "sns.amazonaws.com",
        "states.amazonaws.com",
        "events.amazonaws.com",
        "delivery.logs.amazonaws.com",
        "cloudwatch.amazonaws.com",
    }
    for statement in services:
        condition = statement["Condition"]
        if statement["Principal"]["Service"].startswith("logs."):
            context = condition["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
            assert json.dumps(context).endswith(':logs:us-east-1:123456789012:log-group:*"')
        else:
            assert condition["StringEquals"] == {"aws:SourceAccount": "123456789012"}, statement


def test_both_images_are_built_and_named_to_every_function(synthesized):
    # defect 6: the Trainium image is an asset of its own, and the functions know both
    manifest = json.loads((Path(synthesized["outdir"]) / "trainforge-training.assets.json").read_text())
    dockerfiles = sorted(image["source"]["dockerFile"] for image in manifest["dockerImages"].values())
    assert dockerfiles == ["training_image/Dockerfile", "training_image/Dockerfile.neuron"]
    for function in resources(synthesized, "pipeline", "AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "TRAINFORGE_IMAGE_URI" in variables:
            assert variables["TRAINFORGE_IMAGE_URI"] != variables["TRAINFORGE_NEURON_IMAGE_URI"]
            assert "dkr.ecr" in json.dumps(variables["TRAINFORGE_NEURON_IMAGE_URI"])


def test_cfn_lint_reports_no_errors(synthesized):
    files = sorted(str(p) for p in Path(synthesized["outdir"]).glob("*.template.json"))
    assert len(files) == 3
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "error", *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
