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
_CONCURRENCY = (
    "Reserved concurrency is opt-in (context reserved_concurrency): Lambda keeps 100 of the account's concurrency "
    "unreserved and new accounts start with a quota of 10-50, so reserving for every function makes `cdk deploy` fail there."
)
_JOB_MEMBERS = (
    "The only all-traffic rule has the jobs' own security group as its source (members of one distributed job: "
    "IPsec for inter-container encryption is UDP 500 and ESP, EFA needs all traffic); nothing outside the group is admitted."
)
#: an ARN as cdk-nag names it: the partition is a reference, or a literal once the region is known
_RESOURCE_ARN = r"AwsSolutions-IAM5\[Resource::arn:(<AWS::Partition>|aws|aws-cn|aws-us-gov):"
#: a region and an account: literals, or references where the environment is left to the deployment
#: (`npx cdk synth` without credentials names them <AWS::Region> and <AWS::AccountId>)
_REGION = r"(<AWS::Region>|[a-z0-9-]+)"
_REGION_ACCOUNT = _REGION + r":(<AWS::AccountId>|\d{12}):"
_PARTITION_IAM4 = r"AwsSolutions-IAM4\[Policy::arn:(<AWS::Partition>|aws|aws-cn|aws-us-gov):"
#: Findings that carry a per-finding suffix (IAM4 names the managed policy, IAM5 the wildcard) are
#: acknowledged one by one, and only when they match a reviewed pattern here: a new wildcard that matches
#: none of them stays a finding and fails synthesis.
FINDING_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        _PARTITION_IAM4 + r"iam::aws:policy/service-role/AWSLambda(Basic|VPCAccess)ExecutionRole\]",
        "AWS's minimal Lambda execution policies (logs; VPC network interfaces), on the pipeline functions and CDK's bucket-notifications handler.",
    ),
    (
        _RESOURCE_ARN
        + r"s3:::[\w<>:-]+/(datasets|jobs|base-models|runs|reports|validation-results|deployments|capture)/\*\]",
        "Object-key prefixes: a role reads or writes every object under the one prefix it needs, never the whole bucket "
        "(deployments/: the endpoints' rollout records; capture/: the endpoints' data capture, written by SageMaker).",
    ),
    (
        _RESOURCE_ARN + r"s3:::[\w<>:-]+/runs/\*/validation/manifest\.json\]",
        "The validation map's item list, one per run (runs are named at run time): the state machine reads nothing else of a run.",
    ),
    (
        _RESOURCE_ARN + r"states:" + _REGION_ACCOUNT + r"execution:[\w-]+-training-pipeline/\*\]",
        "The Distributed Map's child executions of the state machine itself, named by Step Functions at run time.",
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
        _RESOURCE_ARN
        + r"(sagemaker|bedrock):"
        + _REGION_ACCOUNT
        + r"(training-job|processing-job|hyper-parameter-tuning-job|model|model-package|model-package-group|endpoint|endpoint-config|model-import-job|imported-model)/\*\]",
        "SageMaker and Bedrock resources are named by run ids chosen at run time; each role gets only the resource types it creates or reads.",
    ),
    (
        _RESOURCE_ARN
        + r"logs:"
        + _REGION_ACCOUNT
        + r"log-group:/aws/sagemaker/(\*|(TrainingJobs|ProcessingJobs):\*)\]",
        "SageMaker jobs write their own log groups under /aws/sagemaker/, one stream per job and instance, named at run time.",
    ),
    (
        _RESOURCE_ARN + r"scheduler:" + _REGION_ACCOUNT + r"schedule/<RetrainSchedules>/\*\]",
        "Schedules named per job (sync_schedule: the spec's schedule) and per upload (admit_run: the debounce) at run time, "
        "inside the stack's own schedule group only.",
    ),
    (
        _RESOURCE_ARN + r"cloudwatch:" + _REGION_ACCOUNT + r"alarm:[\w-]+-\*\]",
        "A canary's rollback alarms, named PREFIX-ENDPOINT-VARIANT-... when it shifts (endpoints and variants are "
        "named per job and version at run time): check_parity creates and reads alarms under the stack's prefix only.",
    ),
    (
        _RESOURCE_ARN + r"ec2:" + _REGION_ACCOUNT + r"network-interface/\*\]",
        "Bedrock's import jobs create their network interfaces under run-time ids, only when tagged BedrockManaged "
        "and only in the stack's subnets and jobs security group.",
    ),
    (
        _RESOURCE_ARN
        + r"ecr:"
        + _REGION
        + r":\*:repository/(djl-inference|(pytorch|tensorflow)-training(-neuronx)?)\]",
        "Pulling AWS's LMI serving image and its framework training containers (custom jobs): named repositories whose "
        "Deep Learning Containers account differs by region; the image URIs are built by trainforge, never taken from a user.",
    ),
    (
        _RESOURCE_ARN + r"ecr:" + _REGION_ACCOUNT + r"repository/[\w-]+-custom/\*\]",
        "Pulling a custom job's container of one's own (custom.image): only this account's and region's repositories "
        "named PREFIX-custom/..., a namespace the account's owners push to; Prepare refuses any other image URI.",
    ),
    (
        r"AwsSolutions-IAM5\[Resource::\*\]",
        "APIs that only accept Resource '*': X-Ray PutTraceSegments/PutTelemetryRecords (Lambda tracing), EC2 network-interface calls "
        "for VPC jobs, CloudWatch PutMetricData (limited by namespace condition), bedrock:CreateModelImportJob (no resource type), "
        "sagemaker:ListTrainingJobs/ListProcessingJobs/ListHyperParameterTuningJobs (no resource type), servicequotas:ListServiceQuotas and "
        "ListAWSDefaultServiceQuotas (no resource type: the plan reads the SageMaker quotas a run needs), cloudwatch:GetMetricData "
        "(no resource type: continuous evaluation reads each endpoint variant's AWS/SageMaker metrics), sagemaker:ListTags, which AWS documents on '*' "
        "for Step Functions' .sync job integrations, and the EC2 calls of Bedrock's import jobs in the VPC (describe; "
        "manage only interfaces tagged BedrockManaged in the stack's subnets).",
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
    Acknowledgement("pipeline", None, "HIPAA.Security-LambdaConcurrency", _CONCURRENCY),
    Acknowledgement("pipeline", None, "NIST.800.53.R5-LambdaConcurrency", _CONCURRENCY),
    Acknowledgement("training", "JobsSecurityGroup", "HIPAA.Security-EC2RestrictedCommonPorts", _JOB_MEMBERS),
    Acknowledgement("training", "JobsSecurityGroup", "NIST.800.53.R5-EC2RestrictedCommonPorts", _JOB_MEMBERS),
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
            success=not kept,
            violations=[_beta(violation) for violation in kept],
            metadata=report.metadata,
            plugin_version=report.plugin_version,
        )


def _beta(violation: cdk.PolicyViolation) -> cdk.PolicyViolationBeta1:
    """The packs report in the newer PolicyViolation type; the plugin interface they run under takes Beta1
    (handing it the newer one turns every unaccepted finding into an opaque type error)."""
    return cdk.PolicyViolationBeta1(
        rule_name=violation.rule_name,
        description=violation.description,
        violating_resources=[
            cdk.PolicyViolatingResourceBeta1(
                locations=list(resource.locations),
                # the newer type may name the construct instead of the template's resource
                resource_logical_id=resource.resource_logical_id or resource.construct_path or "",
                template_path=resource.template_path or "",
            )
            for resource in violation.violating_resources
        ],
        fix=violation.fix,
        rule_metadata=violation.rule_metadata,
        severity=violation.severity,
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
