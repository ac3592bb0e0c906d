"""cdk-nag: four rule packs on every synth, and every finding TrainForge accepts acknowledged here, in one
place, each with its reason. ``tests/infra`` pins the number of acknowledgements, so a new one is always
a reviewed change, and checks that no unacknowledged finding remains."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
import jsii
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks
from constructs import IConstruct

PACKS = (AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks)

_INLINE = (
    "CDK grants write one policy per role, scoped to the exact resources granted; they are reviewed here "
    "as code rather than as separately versioned managed policies."
)
#: Findings that carry a per-finding suffix (IAM4 names the managed policy, IAM5 the wildcard) are
#: acknowledged one by one, and only when they match a reviewed pattern here: a new wildcard that matches
#: none of them stays a finding and fails synthesis.
FINDING_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambda(Basic|VPCAccess)ExecutionRole\]",
        "AWS's minimal Lambda execution policies (logs; VPC network interfaces), on the pipeline functions and CDK's bucket-notifications handler.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:s3:::[\w<>:-]+/(datasets|jobs|base-models|runs|reports)/\*\]",
        "Object-key prefixes: a role reads or writes every object under the one prefix it needs, never the whole bucket.",
    ),
    (
        r"AwsSolutions-IAM5\[Action::(s3:(Abort|DeleteObject|GetBucket|GetObject|List)|kms:(GenerateDataKey|ReEncrypt))\*\]",
        "Action families CDK's grant_read / grant_read_write / grant_encrypt_decrypt emit, on the resources above and the stack's key only.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::<\w+Function\w+\.Arn>:\*\]",
        "Invoking a function's versions and aliases (ARN:*), as Step Functions and EventBridge Scheduler do.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:(sagemaker|bedrock):[^:]+:[^:]+:(training-job|processing-job|model|model-package|model-package-group|endpoint|endpoint-config|model-import-job|imported-model)/\*\]",
        "SageMaker and Bedrock resources are named by run ids chosen at run time; each role gets only the resource types it creates or reads.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:logs:[^:]+:[^:]+:log-group:/aws/sagemaker/\*\]",
        "SageMaker jobs write their own log groups under /aws/sagemaker/.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::\*\]",
        "APIs that only accept Resource '*': X-Ray PutTraceSegments/PutTelemetryRecords (Lambda tracing), EC2 network-interface calls "
        "for VPC jobs, CloudWatch PutMetricData (limited by namespace condition).",
    ),
)


@dataclass(frozen=True)
class Acknowledgement:
    #: "data" | "training" | "pipeline": the stack, and optionally a construct path inside it
    stack: str
    path: str | None
    rule: str
    reason: str


ACKNOWLEDGEMENTS: tuple[Acknowledgement, ...] = (
    Acknowledgement(
        "data",
        "AccessLogs",
        "HIPAA.Security-S3DefaultEncryptionKMS",
        "S3 server access logs can only be delivered to a bucket encrypted with SSE-S3; the bucket holds request logs, no data.",
    ),
    Acknowledgement(
        "data",
        "AccessLogs",
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "S3 server access logs can only be delivered to a bucket encrypted with SSE-S3; the bucket holds request logs, no data.",
    ),
    Acknowledgement(
        "data",
        None,
        "HIPAA.Security-S3BucketReplicationEnabled",
        "Data must not leave the account's region by default; a platform team that needs a replica adds replication to its own DR account.",
    ),
    Acknowledgement(
        "data",
        None,
        "NIST.800.53.R5-S3BucketReplicationEnabled",
        "Data must not leave the account's region by default; a platform team that needs a replica adds replication to its own DR account.",
    ),
    Acknowledgement("data", None, "HIPAA.Security-IAMNoInlinePolicy", _INLINE),
    Acknowledgement("data", None, "NIST.800.53.R5-IAMNoInlinePolicy", _INLINE),
    Acknowledgement("training", None, "HIPAA.Security-IAMNoInlinePolicy", _INLINE),
    Acknowledgement("training", None, "NIST.800.53.R5-IAMNoInlinePolicy", _INLINE),
    Acknowledgement("pipeline", None, "HIPAA.Security-IAMNoInlinePolicy", _INLINE),
    Acknowledgement("pipeline", None, "NIST.800.53.R5-IAMNoInlinePolicy", _INLINE),
    Acknowledgement(
        "pipeline",
        None,
        "Serverless-SQSRedrivePolicy",
        "These queues are the dead-letter queues; an alarm fires on their first message.",
    ),
)


def _target(stacks: dict[str, cdk.Stack], ack: Acknowledgement) -> IConstruct:
    stack = stacks[ack.stack]
    return stack.node.find_child(ack.path) if ack.path else stack


def reason_for(rule_name: str) -> str | None:
    return next((why for pattern, why in FINDING_PATTERNS if re.fullmatch(pattern, rule_name)), None)


@jsii.implements(cdk.IPolicyValidationPluginBeta1)
class ReviewedPack:
    """A cdk-nag pack whose findings are accepted only when they match a reviewed pattern.

    It has to run as the validation plugin itself: the findings with per-finding suffixes are named after
    the resolved template (account, region, imported names), which only exists at synthesis."""

    def __init__(self, pack: cdk.IPolicyValidationPluginBeta1) -> None:
        self.pack = pack
        self.accepted: dict[str, str] = {}
        self.rejected: list[str] = []

    @property
    def name(self) -> str:
        return str(self.pack.name)

    @property
    def version(self) -> str | None:
        return self.pack.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self.pack.rule_ids

    def validate(self, context: cdk.IPolicyValidationContextBeta1) -> cdk.PolicyValidationPluginReportBeta1:
        report = self.pack.validate(context)
        kept = []
        for violation in report.violations:
            reason = reason_for(violation.rule_name)
            if reason is None:
                kept.append(violation)
                self.rejected.append(violation.rule_name)
            else:
                self.accepted[violation.rule_name] = reason
        return cdk.PolicyValidationPluginReportBeta1(
            success=not kept, violations=kept, metadata=report.metadata, plugin_version=report.plugin_version
        )


def acknowledge(stacks: dict[str, cdk.Stack]) -> None:
    for ack in ACKNOWLEDGEMENTS:
        cdk.Validations.of(_target(stacks, ack)).acknowledge(cdk.Acknowledgment(id=ack.rule, reason=ack.reason))


def apply_nag(app: cdk.App, data: cdk.Stack, training: cdk.Stack, pipeline: cdk.Stack) -> list[ReviewedPack]:
    """Acknowledge the accepted rules and run every pack on synth: an unaccepted finding fails it."""
    acknowledge({"data": data, "training": training, "pipeline": pipeline})
    packs = [ReviewedPack(pack(app)) for pack in PACKS]
    for pack in packs:
        cdk.Validations.of(app).add_plugins(pack)
    return packs
