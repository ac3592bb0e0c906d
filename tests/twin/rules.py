"""The twin's table of AWS's documented rules: every request the pipeline sends is held to it, and refused
where AWS would refuse it, before the twin acts on the request.

One row per rule. A row names the API it applies to (the IAM action name, ``service:Operation``), states the
constraint in one sentence, cites the AWS page that documents it, and checks a request: ``None`` when the
request obeys, else what is wrong, naming the field. Only what AWS documents as a requirement is a rule;
advice ("use checkpoints with spot training") is not.

``request`` holds the parameters as the client sent them, under the API reference's names: the JSON body for
SageMaker (PascalCase), Bedrock (camelCase) and Step Functions; for EventBridge Scheduler the JSON body plus
``Name`` from the request path; for InvokeEndpoint the parameters with ``Body`` as bytes or str; for SNS
Publish the parameters as boto3 names them (``MessageAttributes``: name -> ``{"DataType", "StringValue" or
"BinaryValue"}``).

The facts are the twin's own, read from AWS's documentation. Nothing here imports the product, so the twin
cannot agree with a product mistake by construction. Where the SageMaker API reference's prose and its
length constraints differ (hyperparameter values: "256 characters" in prose, 2500 in the constraint), the
constraint the service validates is the rule.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class RuleContext(Protocol):
    """What a rule may ask of the twin's world beyond the request itself."""

    def role_trust_principals(self, role_arn: str) -> set[str] | None:
        """Service principals the role's trust policy allows; None when no such role exists."""
        ...

    def s3_keys(self, uri: str) -> list[str]:
        """``s3://`` URIs of the objects under a prefix."""
        ...

    def endpoint_config(self, name: str) -> Mapping[str, Any] | None:
        """DescribeEndpointConfig's answer for ``name``; None when no such configuration exists."""
        ...

    def endpoint_config_name(self, endpoint: str) -> str | None:
        """The configuration ``endpoint`` runs now; None when no such endpoint exists."""
        ...


Check = Callable[[dict[str, Any], RuleContext], str | None]


@dataclass(frozen=True)
class Rule:
    id: str  # stable, e.g. "training.volume-kms-key-local-storage"
    api: str  # "sagemaker:CreateTrainingJob", "bedrock:CreateModelImportJob", "states:StartExecution", ...
    rule: str  # the documented constraint, one sentence
    source: str  # URL of the AWS page that states it
    check: Check  # None when the request obeys; else what is wrong, naming the field


TRAINING = "sagemaker:CreateTrainingJob"
PROCESSING = "sagemaker:CreateProcessingJob"
TUNING = "sagemaker:CreateHyperParameterTuningJob"
MODEL = "sagemaker:CreateModel"
ENDPOINT_CONFIG = "sagemaker:CreateEndpointConfig"
ENDPOINT = "sagemaker:CreateEndpoint"
UPDATE_ENDPOINT = "sagemaker:UpdateEndpoint"
INVOKE_ENDPOINT = "sagemaker:InvokeEndpoint"
MODEL_IMPORT = "bedrock:CreateModelImportJob"
START_EXECUTION = "states:StartExecution"
CREATE_SCHEDULE = "scheduler:CreateSchedule"
UPDATE_SCHEDULE = "scheduler:UpdateSchedule"
PUBLISH = "sns:Publish"

_SM = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/"
_SM_ROLES = "https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html"
_SPOT = "https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html"
_BEDROCK = "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelImportJob.html"
_BEDROCK_ROLE = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-import-iam-role.html"
_BEDROCK_FILES = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-import-model.html"
_STATES = "https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html"
_SCHEDULER = "https://docs.aws.amazon.com/scheduler/latest/APIReference/"
_SCHEDULE_TYPES = "https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html"
_SCHEDULER_ROLE = "https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role"
_SNS = "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html"
_TAGGING = "https://docs.aws.amazon.com/general/latest/gr/aws_tagging.html"
_INSTANCE_STORE = "https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html#ac_instance-store"


def _reference(api: str) -> str:
    """The API reference page of a SageMaker or Scheduler operation."""
    service, operation = api.split(":")
    return {"sagemaker": _SM, "scheduler": _SCHEDULER}[service] + f"API_{operation}.html"


# --- instance storage -------------------------------------------------------------------------------------------------

#: SageMaker instance families whose instances carry local NVMe instance-store volumes (EC2 instance type
#: specifications, "Instance store specifications" of the accelerated computing, general purpose, compute
#: and memory optimized pages). SageMaker encrypts those with the instance's hardware and refuses a
#: VolumeKmsKeyId for them.
LOCAL_STORAGE_FAMILIES = frozenset(
    {
        "c5d", "c6gd", "dl1", "g4dn", "g5", "g6", "g6e", "m5d", "m6gd", "p3dn", "p4d", "p4de",
        "p5", "p5e", "p5en", "p6-b200", "p6e-gb200", "r5d", "r6gd", "r7gd", "trn1", "trn1n", "trn2",
    }
)  # fmt: skip
#: Families with EBS storage only (same pages: no instance store).
EBS_ONLY_FAMILIES = frozenset(
    {
        "c4", "c5", "c5n", "c6g", "c6gn", "c6i", "c6in", "c7g", "c7i", "c7i-flex", "c8g", "c8i", "c8i-flex",
        "inf1", "inf2", "m4", "m5", "m6g", "m6i", "m7i", "m7i-flex", "m8g", "m8i", "m8i-flex", "p2", "p3",
        "r5", "r6g", "r6i", "r7i", "r8g", "r8i", "r8i-flex", "t2", "t3",
    }
)  # fmt: skip


def _sizes(table: dict[str, str]) -> dict[str, int]:
    """``{"g5": "xlarge=250 2xlarge=450"}`` -> ``{"ml.g5.xlarge": 250, "ml.g5.2xlarge": 450}``."""
    return {
        f"ml.{family}.{size}": int(gb)
        for family, sizes in table.items()
        for size, gb in (entry.split("=") for entry in sizes.split())
    }


#: Total local instance storage, GB, of the types whose size the twin knows (same EC2 pages). Processing
#: and tuning volumes may not ask for more.
LOCAL_STORAGE_GB: dict[str, int] = _sizes(
    {
        "g4dn": "xlarge=125 2xlarge=225 4xlarge=225 8xlarge=900 12xlarge=900 16xlarge=900",
        "g5": "xlarge=250 2xlarge=450 4xlarge=600 8xlarge=900 12xlarge=3800 16xlarge=1900 24xlarge=3800 48xlarge=7600",
        "g6": "xlarge=250 2xlarge=450 4xlarge=600 8xlarge=900 12xlarge=3760 16xlarge=1880 24xlarge=3760 48xlarge=7520",
        "g6e": "xlarge=250 2xlarge=450 4xlarge=600 8xlarge=900 12xlarge=3800 16xlarge=1900 24xlarge=3800 48xlarge=7600",
        "m5d": "large=75 xlarge=150 2xlarge=300 4xlarge=600 8xlarge=1200 12xlarge=1800 16xlarge=2400 24xlarge=3600",
        "r5d": "large=75 xlarge=150 2xlarge=300 4xlarge=600 8xlarge=1200 12xlarge=1800 16xlarge=2400 24xlarge=3600",
        "c5d": "large=50 xlarge=100 2xlarge=200 4xlarge=400 9xlarge=900 12xlarge=1800 18xlarge=1800 24xlarge=3600",
        "p3dn": "24xlarge=1800",
        "p4d": "24xlarge=8000",
        "p4de": "24xlarge=8000",
        "dl1": "24xlarge=4000",
        "trn1": "2xlarge=474 32xlarge=7600",
        "trn1n": "32xlarge=7600",
        "trn2": "48xlarge=7600",
    }
)


def has_local_storage(instance_type: str) -> bool | None:
    """True for a type with local NVMe storage, False for EBS only, None when the twin's table does not say."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) == 3 else ""
    if family in LOCAL_STORAGE_FAMILIES:
        return True
    if family in EBS_ONLY_FAMILIES:
        return False
    return None


def _unknown_storage(field: str, instance_type: str) -> str:
    return (
        f"{field} {instance_type!r}: the twin's table does not say whether this type has instance storage "
        "(add its family to LOCAL_STORAGE_FAMILIES or EBS_ONLY_FAMILIES from EC2's instance store specifications)"
    )


# --- reading a request ------------------------------------------------------------------------------------------------

Path = tuple[str, ...]


def _at(request: Mapping[str, Any], path: Path) -> Any:
    node: Any = request
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _name(path: Path) -> str:
    return ".".join(path)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _within(value: Any, low: int, high: int | None = None) -> bool:
    """An integer (not a bool) in low..high."""
    number = _int(value)
    return number is not None and number >= low and (high is None or number <= high)


def _utf8_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(str(value).encode("utf-8"))


def _instance_types(resources: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, instance type) of every instance a resource configuration asks for."""
    if isinstance(resources.get("InstanceType"), str):
        yield "InstanceType", resources["InstanceType"]
    for group in ("InstanceGroups", "InstanceConfigs", "InstancePreferences"):
        for index, item in enumerate(_items(resources.get(group))):
            if isinstance(item, Mapping) and isinstance(item.get("InstanceType"), str):
                yield f"{group}[{index}].InstanceType", item["InstanceType"]


# --- rule makers: one per kind of constraint, so each fact is written once --------------------------------------------


def _string(
    rule_id: str, api: str, path: Path, pattern: str, max_length: int, source: str, *, required: bool = True
) -> Rule:
    """A string of 1..max_length characters that fully matches the API reference's pattern."""
    compiled = re.compile(pattern)
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        value = _at(request, path)
        if value is None:
            return f"{field} is missing" if required else None
        if not isinstance(value, str) or not 1 <= len(value) <= max_length or not compiled.fullmatch(value):
            return f"{field} {value!r} is not 1-{max_length} characters matching {pattern}"
        return None

    return Rule(rule_id, api, f"{field} is 1-{max_length} characters matching {pattern}.", source, check)


def _count(rule_id: str, api: str, path: Path, low: int, high: int, source: str) -> Rule:
    """A list (when present) of low..high items."""
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        value = _at(request, path)
        if value is None:
            return None
        if not isinstance(value, list) or not low <= len(value) <= high:
            size = len(value) if isinstance(value, list) else "no"
            return f"{field} has {size} items; {low}-{high} are allowed"
        return None

    return Rule(rule_id, api, f"{field}, when given, holds {low}-{high} items.", source, check)


def _in_range(
    rule_id: str, api: str, path: Path, low: int, high: int | None, source: str, *, required: bool = False
) -> Rule:
    """An integer (when present) within low..high."""
    field = _name(path)
    bound = f"{low}-{high}" if high is not None else f"at least {low}"

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        value = _at(request, path)
        if value is None:
            return f"{field} is missing" if required else None
        if not _within(value, low, high):
            return f"{field} is {value!r}; it must be an integer {bound}"
        return None

    return Rule(rule_id, api, f"{field} is an integer {bound}.", source, check)


def _one_of(rule_id: str, api: str, path: Path, values: tuple[str, ...], source: str) -> Rule:
    """Where present, one of the API's enumerated values."""
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        value = _at(request, path)
        if value is not None and value not in values:
            return f"{field} is {value!r}; valid values are {', '.join(values)}"
        return None

    return Rule(rule_id, api, f"{field} is one of {', '.join(values)}.", source, check)


def _trusted_role(rule_id: str, api: str, path: Path, principal: str, source: str, *, required: bool = True) -> Rule:
    """The role passed exists and its trust policy lets the service assume it."""
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        arn = _at(request, path)
        if arn is None:
            return f"{field} is missing" if required else None
        principals = ctx.role_trust_principals(str(arn))
        if principals is None:
            return f"{field} {arn} names a role that does not exist"
        if principal not in principals:
            allowed = ", ".join(sorted(principals)) or "no service"
            return f"{field} {arn} is not trusted by {principal} (its trust policy allows {allowed})"
        return None

    return Rule(rule_id, api, f"The role in {field} exists and trusts {principal}.", source, check)


def _vpc(
    rule_id: str, api: str, path: Path, source: str, subnets: str = "Subnets", groups: str = "SecurityGroupIds"
) -> Rule:
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        vpc = _at(request, path)
        if vpc is None:
            return None
        for key, high in ((subnets, 16), (groups, 5)):
            value = vpc.get(key) if isinstance(vpc, Mapping) else None
            if not isinstance(value, list) or not 1 <= len(value) <= high:
                size = len(value) if isinstance(value, list) else "no"
                return f"{field}.{key} has {size} items; 1-{high} are required"
        return None

    return Rule(rule_id, api, f"{field} has 1-16 {subnets} and 1-5 {groups}.", source, check)


_TAG_SYMBOLS = frozenset("_.:/=+-@")


def _tag_text_ok(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "LZN" or ch in _TAG_SYMBOLS for ch in text)


def _tags(prefix: str, api: str, path: Path = ("Tags",)) -> tuple[Rule, ...]:
    """SageMaker's Tag shape: at most 50 per resource, unique keys, AWS's tag characters, no aws: prefix."""
    field = _name(path)

    def tags(request: dict[str, Any]) -> list[Any]:
        return _items(_at(request, path))

    def form(request: dict[str, Any], ctx: RuleContext) -> str | None:
        seen: set[str] = set()
        for index, tag in enumerate(tags(request)):
            key = tag.get("Key") if isinstance(tag, Mapping) else None
            value = tag.get("Value") if isinstance(tag, Mapping) else None
            where = f"{field}[{index}]"
            if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _tag_text_ok(key):
                return f"{where}.Key {key!r} is not 1-128 letters, numbers, spaces or _ . : / = + - @"
            if not isinstance(value, str) or len(value) > 256 or not _tag_text_ok(value):
                return f"{where}.Value {value!r} is not 0-256 letters, numbers, spaces or _ . : / = + - @"
            if key in seen:
                return f"{where}.Key {key!r} repeats an earlier key; tag keys must be unique per resource"
            seen.add(key)
        return None

    def reserved(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for index, tag in enumerate(tags(request)):
            for part in ("Key", "Value"):
                text = tag.get(part) if isinstance(tag, Mapping) else None
                if isinstance(text, str) and text.lower().startswith("aws:"):
                    return f"{field}[{index}].{part} {text!r} uses the aws: prefix, which is reserved for AWS"
        return None

    return (
        _count(f"{prefix}.tags-count", api, path, 0, 50, _reference(api)),
        Rule(
            f"{prefix}.tag-format",
            api,
            f"Each of {field} has a unique Key of 1-128 and a Value of 0-256 letters, numbers, spaces or _.:/=+-@.",
            _SM + "API_Tag.html",
            form,
        ),
        Rule(f"{prefix}.tag-aws-prefix", api, f"No key or value in {field} begins with aws:.", _TAGGING, reserved),
    )


def _volume_key(rule_id: str, api: str, path: Path, source: str) -> Rule:
    """Types with local NVMe storage encrypt it in hardware and refuse a VolumeKmsKeyId."""
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        resources = _at(request, path)
        if not isinstance(resources, Mapping) or not resources.get("VolumeKmsKeyId"):
            return None
        for where, instance_type in _instance_types(resources):
            local = has_local_storage(instance_type)
            if local is None:
                return _unknown_storage(f"{field}.{where}", instance_type)
            if local:
                return (
                    f"{field}.VolumeKmsKeyId is set while {field}.{where} is {instance_type}, a type with local NVMe "
                    "instance storage (encrypted by the instance's hardware module; SageMaker refuses the key)"
                )
        return None

    return Rule(
        rule_id,
        api,
        f"{field}.VolumeKmsKeyId is not sent for instance types with local instance storage.",
        source,
        check,
    )


def _volume_within_local_storage(rule_id: str, api: str, path: Path, source: str) -> Rule:
    """On types with instance storage, the volume is that storage: VolumeSizeInGB may not exceed it."""
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        resources = _at(request, path)
        if not isinstance(resources, Mapping):
            return None
        size = _int(resources.get("VolumeSizeInGB"))
        if size is None:
            return None
        for where, instance_type in _instance_types(resources):
            local = has_local_storage(instance_type)
            if local is None:
                return _unknown_storage(f"{field}.{where}", instance_type)
            if not local:
                continue
            total = LOCAL_STORAGE_GB.get(instance_type)
            if total is None:
                return (
                    f"{field}.{where} {instance_type}: the twin's table does not know this type's local storage "
                    "size (add it to LOCAL_STORAGE_GB from EC2's instance store specifications)"
                )
            if size > total:
                return f"{field}.VolumeSizeInGB is {size}; {instance_type} has {total} GB of local storage"
        return None

    return Rule(
        rule_id,
        api,
        f"{field}.VolumeSizeInGB is at most the local storage of an instance type that has instance storage.",
        source,
        check,
    )


def _stopping(prefix: str, api: str, base: Path) -> tuple[Rule, ...]:
    """StoppingCondition and managed spot training, for a training job or a tuning job's training jobs."""
    stopping = (*base, "StoppingCondition")
    spot_field = _name((*base, "EnableManagedSpotTraining"))
    wait_field = _name((*stopping, "MaxWaitTimeInSeconds"))
    runtime_field = _name((*stopping, "MaxRuntimeInSeconds"))

    def parts(request: dict[str, Any]) -> tuple[bool, Any, Any]:
        condition = _at(request, stopping)
        condition = condition if isinstance(condition, Mapping) else {}
        spot = _at(request, (*base, "EnableManagedSpotTraining")) is True
        return spot, condition.get("MaxRuntimeInSeconds"), condition.get("MaxWaitTimeInSeconds")

    def spot_needs_wait(request: dict[str, Any], ctx: RuleContext) -> str | None:
        spot, _, wait = parts(request)
        return f"{spot_field} is true and {wait_field} is missing" if spot and wait is None else None

    def wait_needs_spot(request: dict[str, Any], ctx: RuleContext) -> str | None:
        spot, _, wait = parts(request)
        return f"{wait_field} is set but {spot_field} is not true" if wait is not None and not spot else None

    def wait_covers_runtime(request: dict[str, Any], ctx: RuleContext) -> str | None:
        _, runtime, wait = parts(request)
        if wait is None:
            return None
        wait_s = _int(wait)
        runtime_s = _int(runtime) if runtime is not None else 86400
        if wait_s is None or wait_s < 1:
            return f"{wait_field} is {wait!r}; it must be a positive integer"
        if runtime_s is not None and wait_s < runtime_s:
            return f"{wait_field} {wait_s} is less than {runtime_field} {runtime_s}"
        return None

    return (
        _in_range(
            f"{prefix}.max-runtime",
            api,
            (*stopping, "MaxRuntimeInSeconds"),
            1,
            28 * 86400,
            _SM + "API_StoppingCondition.html",
        ),
        Rule(f"{prefix}.spot-needs-max-wait", api, f"With {spot_field}, {wait_field} is set.", _SPOT, spot_needs_wait),
        Rule(
            f"{prefix}.max-wait-only-with-spot",
            api,
            f"{wait_field} bounds a managed spot training job and is sent only with {spot_field}.",
            _SM + "API_StoppingCondition.html",
            wait_needs_spot,
        ),
        Rule(
            f"{prefix}.max-wait-covers-runtime",
            api,
            f"{wait_field} is equal to or greater than {runtime_field} (default one day).",
            _SM + "API_StoppingCondition.html",
            wait_covers_runtime,
        ),
    )


def _hyperparameters(prefix: str, api: str, path: Path, source: str) -> tuple[Rule, ...]:
    field = _name(path)

    def mapping(request: dict[str, Any]) -> Mapping[str, Any]:
        value = _at(request, path)
        return value if isinstance(value, Mapping) else {}

    def count(request: dict[str, Any], ctx: RuleContext) -> str | None:
        size = len(mapping(request))
        return f"{field} has {size} entries; at most 100 are allowed" if size > 100 else None

    def strings(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for key, value in mapping(request).items():
            if not isinstance(value, str):
                return f"{field}[{key!r}] is {type(value).__name__} {value!r}; hyperparameter values are strings"
        return None

    def lengths(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for key, value in mapping(request).items():
            if len(key) > 256:
                return f"{field} key {key[:40]!r}... is {len(key)} characters; at most 256"
            if isinstance(value, str) and len(value) > 2500:
                return f"{field}[{key!r}] is {len(value)} characters; at most 2500"
        return None

    return (
        Rule(f"{prefix}.hyperparameters-count", api, f"{field} has at most 100 entries.", source, count),
        Rule(f"{prefix}.hyperparameter-strings", api, f"Every value in {field} is a string.", source, strings),
        Rule(
            f"{prefix}.hyperparameter-lengths",
            api,
            f"Keys in {field} are at most 256 characters and values at most 2500.",
            source,
            lengths,
        ),
    )


_S3_URI = r"(https|s3)://([^/]+)/?(.*)"


def _channels(prefix: str, api: str, path: Path) -> tuple[Rule, ...]:
    field = _name(path)
    channel_source = _SM + "API_Channel.html"
    s3_source = _SM + "API_S3DataSource.html"
    name_pattern = re.compile(r"[A-Za-z0-9\.\-_]+")
    uri_pattern = re.compile(_S3_URI)

    def channels(request: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for index, channel in enumerate(_items(_at(request, path))):
            if isinstance(channel, Mapping):
                yield f"{field}[{index}]", channel

    def names(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for where, channel in channels(request):
            name = channel.get("ChannelName")
            if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name_pattern.fullmatch(name):
                return f"{where}.ChannelName {name!r} is not 1-64 characters of A-Z a-z 0-9 . - _"
        return None

    def s3(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for where, channel in channels(request):
            source = _at(channel, ("DataSource", "S3DataSource"))
            if source is None:
                continue
            uri, kind = source.get("S3Uri"), source.get("S3DataType")
            if not isinstance(uri, str) or len(uri) > 1024 or not uri_pattern.fullmatch(uri):
                return f"{where}.DataSource.S3DataSource.S3Uri {uri!r} is not an s3:// or https:// URI of <= 1024"
            if kind not in ("ManifestFile", "S3Prefix", "AugmentedManifestFile", "Converse"):
                return f"{where}.DataSource.S3DataSource.S3DataType {kind!r} is not ManifestFile, S3Prefix, ..."
            distribution = source.get("S3DataDistributionType")
            if distribution not in (None, "FullyReplicated", "ShardedByS3Key"):
                return f"{where}.DataSource.S3DataSource.S3DataDistributionType {distribution!r} is not valid"
        return None

    def input_mode(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for where, channel in channels(request):
            mode = channel.get("InputMode")
            if mode not in (None, "Pipe", "File", "FastFile"):
                return f"{where}.InputMode {mode!r} is not Pipe, File or FastFile"
        return None

    def compression(request: dict[str, Any], ctx: RuleContext) -> str | None:
        default_mode = _at(request, (*path[:-1], "AlgorithmSpecification", "TrainingInputMode"))
        for where, channel in channels(request):
            mode = channel.get("InputMode", default_mode)
            if mode == "File" and channel.get("CompressionType") not in (None, "None"):
                return f"{where}.CompressionType is {channel['CompressionType']!r} in File mode; leave it unset or None"
        return None

    return (
        _count(f"{prefix}.channels-count", api, path, 1, 20, _reference(api)),
        Rule(
            f"{prefix}.channel-name",
            api,
            f"Each {field}[].ChannelName is 1-64 of [A-Za-z0-9.-_].",
            channel_source,
            names,
        ),
        Rule(
            f"{prefix}.channel-s3-source",
            api,
            "An S3 channel has an s3:// S3Uri of at most 1024 characters and a valid S3DataType and distribution.",
            s3_source,
            s3,
        ),
        Rule(
            f"{prefix}.channel-input-mode",
            api,
            f"{field}[].InputMode is Pipe, File or FastFile.",
            channel_source,
            input_mode,
        ),
        Rule(
            f"{prefix}.channel-compression-file-mode",
            api,
            "A channel read in File mode has no CompressionType other than None.",
            channel_source,
            compression,
        ),
    )


def _metrics(prefix: str, api: str, path: Path) -> tuple[Rule, ...]:
    field = _name(path)

    def lengths(request: dict[str, Any], ctx: RuleContext) -> str | None:
        for index, metric in enumerate(_items(_at(request, path))):
            name = metric.get("Name") if isinstance(metric, Mapping) else None
            regex = metric.get("Regex") if isinstance(metric, Mapping) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                return f"{field}[{index}].Name {name!r} is not 1-255 characters"
            if not isinstance(regex, str) or not 1 <= len(regex) <= 500:
                return f"{field}[{index}].Regex {regex!r} is not 1-500 characters"
        return None

    return (
        _count(f"{prefix}.metric-definitions-count", api, path, 0, 40, _SM + "API_AlgorithmSpecification.html"),
        Rule(
            f"{prefix}.metric-definition-lengths",
            api,
            f"Each {field}[] has a Name of 1-255 and a Regex of 1-500 characters.",
            _SM + "API_MetricDefinition.html",
            lengths,
        ),
    )


_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _environment_problem(
    environment: Any, field: str, key_max: int, value_max: int, count_max: int = 100
) -> str | None:
    """What is wrong with a container's environment map: at most ``count_max`` variables of bounded names and
    values."""
    if not isinstance(environment, Mapping):
        return None
    if len(environment) > count_max:
        return f"{field} has {len(environment)} entries; at most {count_max} are allowed"
    for key, value in environment.items():
        if not _ENV_KEY.fullmatch(key) or len(key) > key_max:
            return f"{field} key {key!r} is not a variable name of at most {key_max} characters"
        if not isinstance(value, str) or len(value) > value_max:
            return f"{field}[{key!r}] is not a string of at most {value_max} characters"
    return None


def _environment(
    rule_id: str, api: str, path: Path, key_max: int, value_max: int, source: str, count_max: int = 100
) -> Rule:
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        return _environment_problem(_at(request, path), field, key_max, value_max, count_max)

    return Rule(
        rule_id,
        api,
        f"{field} has at most {count_max} entries, keys [a-zA-Z_][a-zA-Z0-9_]* of <= {key_max} and values of "
        f"<= {value_max}.",
        source,
        check,
    )


_RESOURCE_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
_SM_ROLE_ARN = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"


def _sagemaker_role(prefix: str, api: str, path: Path, source: str, *, required: bool = True) -> tuple[Rule, ...]:
    return (
        _string(f"{prefix}.role-arn", api, path, _SM_ROLE_ARN, 2048, source, required=required),
        _trusted_role(f"{prefix}.role-trusted", api, path, "sagemaker.amazonaws.com", _SM_ROLES, required=required),
    )


# --- sagemaker:CreateTrainingJob --------------------------------------------------------------------------------------

_TRAINING_SRC = _reference(TRAINING)


def _training_image(request: dict[str, Any], ctx: RuleContext) -> str | None:
    spec = request.get("AlgorithmSpecification")
    spec = spec if isinstance(spec, Mapping) else {}
    image, algorithm = spec.get("TrainingImage"), spec.get("AlgorithmName")
    if (image is None) == (algorithm is None):
        return "AlgorithmSpecification needs exactly one of TrainingImage and AlgorithmName"
    if image is not None and (not isinstance(image, str) or not 1 <= len(image) <= 255):
        return f"AlgorithmSpecification.TrainingImage {image!r} is not 1-255 characters"
    return None


def _ebs_volume_size(request: dict[str, Any], ctx: RuleContext) -> str | None:
    resources = request.get("ResourceConfig")
    if not isinstance(resources, Mapping):
        return None
    if _within(resources.get("VolumeSizeInGB"), 1):
        return None
    for where, instance_type in _instance_types(resources):
        local = has_local_storage(instance_type)
        if local is None:
            return _unknown_storage(f"ResourceConfig.{where}", instance_type)
        if not local:
            return f"ResourceConfig.{where} {instance_type} stores on EBS only and ResourceConfig.VolumeSizeInGB is not set"
    return None


#: script mode: the framework containers' toolkit unpacks ``sagemaker_submit_directory`` (a JSON string) from
#: S3 or from a local path; an isolated container reaches nothing outside, S3 included, so an isolated job must
#: bring the source as an input channel (the SageMaker Python SDK's ``/opt/ml/input/data/code/sourcedir.tar.gz``)
_ISOLATION = "https://docs.aws.amazon.com/sagemaker/latest/dg/mkt-algo-model-internet-free.html"


def _script_mode_source(request: dict[str, Any], ctx: RuleContext) -> str | None:
    hyperparameters = request.get("HyperParameters")
    if not isinstance(hyperparameters, Mapping) or "sagemaker_submit_directory" not in hyperparameters:
        return None
    try:
        submitted = json.loads(hyperparameters["sagemaker_submit_directory"])
    except (TypeError, json.JSONDecodeError):
        return "HyperParameters['sagemaker_submit_directory'] is not a JSON string (script mode decodes each value)"
    if not isinstance(submitted, str):
        return f"HyperParameters['sagemaker_submit_directory'] decodes to {submitted!r}, not a path or URI"
    if not request.get("EnableNetworkIsolation"):
        return None
    channels = {c.get("ChannelName") for c in _items(request.get("InputDataConfig")) if isinstance(c, Mapping)}
    match = re.fullmatch(r"/opt/ml/input/data/([A-Za-z0-9\.\-_]+)/.+", submitted)
    if match is None or match.group(1) not in channels:
        return (
            f"sagemaker_submit_directory {submitted!r}: with EnableNetworkIsolation the container cannot download "
            "the source; it must be a file under /opt/ml/input/data/<channel>/ of one of the job's channels "
            f"({sorted(c for c in channels if c)})"
        )
    return None


_TRAINING_RULES = (
    _string("training.job-name", TRAINING, ("TrainingJobName",), _RESOURCE_NAME, 63, _TRAINING_SRC),
    *_sagemaker_role("training", TRAINING, ("RoleArn",), _TRAINING_SRC),
    Rule(
        "training.image",
        TRAINING,
        "AlgorithmSpecification has exactly one of TrainingImage (<= 255 characters) and AlgorithmName.",
        _SM + "API_AlgorithmSpecification.html",
        _training_image,
    ),
    _one_of(
        "training.input-mode",
        TRAINING,
        ("AlgorithmSpecification", "TrainingInputMode"),
        ("Pipe", "File", "FastFile"),
        _SM + "API_AlgorithmSpecification.html",
    ),
    *_metrics("training", TRAINING, ("AlgorithmSpecification", "MetricDefinitions")),
    *_hyperparameters("training", TRAINING, ("HyperParameters",), _TRAINING_SRC),
    *_channels("training", TRAINING, ("InputDataConfig",)),
    Rule(
        "training.script-mode-source-isolated",
        TRAINING,
        "With EnableNetworkIsolation, a script-mode job's sagemaker_submit_directory is a file in one of its input "
        "channels: an isolated container cannot reach S3.",
        _ISOLATION,
        _script_mode_source,
    ),
    _string(
        "training.output-path",
        TRAINING,
        ("OutputDataConfig", "S3OutputPath"),
        _S3_URI,
        1024,
        _SM + "API_OutputDataConfig.html",
    ),
    _string(
        "training.checkpoint-uri",
        TRAINING,
        ("CheckpointConfig", "S3Uri"),
        _S3_URI,
        1024,
        _SM + "API_CheckpointConfig.html",
        required=False,
    ),
    _volume_key(
        "training.volume-kms-key-local-storage", TRAINING, ("ResourceConfig",), _SM + "API_ResourceConfig.html"
    ),
    Rule(
        "training.volume-size-ebs-only",
        TRAINING,
        "An instance type without instance storage needs ResourceConfig.VolumeSizeInGB, the size of its EBS volume.",
        _SM + "API_ResourceConfig.html",
        _ebs_volume_size,
    ),
    *_stopping("training", TRAINING, ()),
    _vpc("training.vpc-config", TRAINING, ("VpcConfig",), _SM + "API_VpcConfig.html"),
    _environment("training.environment", TRAINING, ("Environment",), 512, 512, _TRAINING_SRC),
    *_tags("training", TRAINING),
)


# --- sagemaker:CreateProcessingJob ------------------------------------------------------------------------------------

_PROCESSING_SRC = _reference(PROCESSING)
_PROCESSING_ROOT = "/opt/ml/processing/"


def _processing_inputs(request: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, item in enumerate(_items(request.get("ProcessingInputs"))):
        if isinstance(item, Mapping):
            yield f"ProcessingInputs[{index}]", item


def _processing_input_source(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, item in _processing_inputs(request):
        if ("S3Input" in item) == ("DatasetDefinition" in item):
            return f"{where} needs exactly one of S3Input and DatasetDefinition"
    return None


def _processing_local_paths(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, item in _processing_inputs(request):
        s3 = item.get("S3Input")
        if not isinstance(s3, Mapping) or item.get("AppManaged") is True:
            continue
        path = s3.get("LocalPath")
        if not isinstance(path, str) or not path.startswith(_PROCESSING_ROOT) or len(path) > 256:
            return f"{where}.S3Input.LocalPath {path!r} is not an absolute path under {_PROCESSING_ROOT} (<= 256)"
    return None


def _processing_s3_inputs(request: dict[str, Any], ctx: RuleContext) -> str | None:
    uri_pattern = re.compile(_S3_URI)
    for where, item in _processing_inputs(request):
        s3 = item.get("S3Input")
        if not isinstance(s3, Mapping):
            continue
        uri = s3.get("S3Uri")
        if not isinstance(uri, str) or len(uri) > 1024 or not uri_pattern.fullmatch(uri):
            return f"{where}.S3Input.S3Uri {uri!r} is not an s3:// or https:// URI of <= 1024 characters"
        if s3.get("S3DataType") not in ("ManifestFile", "S3Prefix"):
            return f"{where}.S3Input.S3DataType {s3.get('S3DataType')!r} is not ManifestFile or S3Prefix"
        if s3.get("S3InputMode") not in (None, "Pipe", "File"):
            return f"{where}.S3Input.S3InputMode {s3.get('S3InputMode')!r} is not Pipe or File"
        if s3.get("S3CompressionType") == "Gzip" and s3.get("S3InputMode") != "Pipe":
            return f"{where}.S3Input.S3CompressionType is Gzip, which needs S3InputMode Pipe"
    return None


def _processing_outputs(request: dict[str, Any], ctx: RuleContext) -> str | None:
    uri_pattern = re.compile(_S3_URI)
    for index, item in enumerate(_items(_at(request, ("ProcessingOutputConfig", "Outputs")))):
        s3 = item.get("S3Output") if isinstance(item, Mapping) else None
        where = f"ProcessingOutputConfig.Outputs[{index}].S3Output"
        if not isinstance(s3, Mapping):
            continue
        uri = s3.get("S3Uri")
        if not isinstance(uri, str) or len(uri) > 1024 or not uri_pattern.fullmatch(uri):
            return f"{where}.S3Uri {uri!r} is not an s3:// or https:// URI of <= 1024 characters"
        if s3.get("S3UploadMode") not in ("Continuous", "EndOfJob"):
            return f"{where}.S3UploadMode {s3.get('S3UploadMode')!r} is not Continuous or EndOfJob"
        path = s3.get("LocalPath")
        if path is not None and (not isinstance(path, str) or not path.startswith("/") or len(path) > 256):
            return f"{where}.LocalPath {path!r} is not an absolute path of <= 256 characters"
    return None


def _container_strings(path: Path, source: str, rule_id: str) -> Rule:
    field = _name(path)

    def check(request: dict[str, Any], ctx: RuleContext) -> str | None:
        value = _at(request, path)
        if value is None:
            return None
        if not isinstance(value, list) or not 1 <= len(value) <= 100:
            return f"{field} must hold 1-100 strings"
        for index, item in enumerate(value):
            if not isinstance(item, str) or len(item) > 256:
                return f"{field}[{index}] is not a string of at most 256 characters"
        return None

    return Rule(rule_id, PROCESSING, f"{field} holds 1-100 strings of at most 256 characters.", source, check)


_CLUSTER = ("ProcessingResources", "ClusterConfig")

_PROCESSING_RULES = (
    _string("processing.job-name", PROCESSING, ("ProcessingJobName",), _RESOURCE_NAME, 63, _PROCESSING_SRC),
    *_sagemaker_role("processing", PROCESSING, ("RoleArn",), _PROCESSING_SRC),
    _string(
        "processing.image", PROCESSING, ("AppSpecification", "ImageUri"), r".+", 255, _SM + "API_AppSpecification.html"
    ),
    _container_strings(
        ("AppSpecification", "ContainerEntrypoint"), _SM + "API_AppSpecification.html", "processing.entrypoint"
    ),
    _container_strings(
        ("AppSpecification", "ContainerArguments"), _SM + "API_AppSpecification.html", "processing.arguments"
    ),
    _count("processing.inputs-count", PROCESSING, ("ProcessingInputs",), 0, 10, _PROCESSING_SRC),
    Rule(
        "processing.input-source",
        PROCESSING,
        "Each ProcessingInputs[] has exactly one of S3Input and DatasetDefinition.",
        _SM + "API_ProcessingInput.html",
        _processing_input_source,
    ),
    Rule(
        "processing.input-local-path",
        PROCESSING,
        f"An S3Input's LocalPath is an absolute path under {_PROCESSING_ROOT}.",
        _SM + "API_ProcessingS3Input.html",
        _processing_local_paths,
    ),
    Rule(
        "processing.input-s3",
        PROCESSING,
        "An S3Input has an s3:// S3Uri, a valid S3DataType and S3InputMode, and Gzip only in Pipe mode.",
        _SM + "API_ProcessingS3Input.html",
        _processing_s3_inputs,
    ),
    _count("processing.outputs-count", PROCESSING, ("ProcessingOutputConfig", "Outputs"), 0, 10, _PROCESSING_SRC),
    Rule(
        "processing.output-s3",
        PROCESSING,
        "An S3Output has an s3:// S3Uri, an S3UploadMode of Continuous or EndOfJob and an absolute LocalPath.",
        _SM + "API_ProcessingS3Output.html",
        _processing_outputs,
    ),
    _in_range(
        "processing.instance-count",
        PROCESSING,
        (*_CLUSTER, "InstanceCount"),
        1,
        100,
        _SM + "API_ProcessingClusterConfig.html",
    ),
    _in_range(
        "processing.volume-size",
        PROCESSING,
        (*_CLUSTER, "VolumeSizeInGB"),
        1,
        16384,
        _SM + "API_ProcessingClusterConfig.html",
        required=True,
    ),
    _volume_within_local_storage(
        "processing.volume-size-local-storage", PROCESSING, _CLUSTER, _SM + "API_ProcessingClusterConfig.html"
    ),
    _volume_key(
        "processing.volume-kms-key-local-storage", PROCESSING, _CLUSTER, _SM + "API_ProcessingClusterConfig.html"
    ),
    _in_range(
        "processing.max-runtime",
        PROCESSING,
        ("StoppingCondition", "MaxRuntimeInSeconds"),
        1,
        777600,
        _SM + "API_ProcessingStoppingCondition.html",
    ),
    _vpc("processing.vpc-config", PROCESSING, ("NetworkConfig", "VpcConfig"), _SM + "API_VpcConfig.html"),
    _environment("processing.environment", PROCESSING, ("Environment",), 256, 256, _PROCESSING_SRC),
    *_tags("processing", PROCESSING),
)


# --- sagemaker:CreateHyperParameterTuningJob --------------------------------------------------------------------------

_TUNING_SRC = _reference(TUNING)
_DEFINITION = ("TrainingJobDefinition",)
_RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")


def _tuning_ranges(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for path in (("HyperParameterTuningJobConfig", "ParameterRanges"), (*_DEFINITION, "HyperParameterRanges")):
        ranges = _at(request, path)
        if isinstance(ranges, Mapping):
            total = sum(len(_items(ranges.get(kind))) for kind in _RANGE_KINDS)
            if total > 30:
                return f"{_name(path)} holds {total} hyperparameters across its ranges; at most 30 are allowed"
    return None


def _tuning_limits(request: dict[str, Any], ctx: RuleContext) -> str | None:
    limits = _at(request, ("HyperParameterTuningJobConfig", "ResourceLimits"))
    if not isinstance(limits, Mapping):
        return "HyperParameterTuningJobConfig.ResourceLimits is missing"
    parallel, total = limits.get("MaxParallelTrainingJobs"), limits.get("MaxNumberOfTrainingJobs")
    if not _within(parallel, 1):
        return f"ResourceLimits.MaxParallelTrainingJobs is {parallel!r}; it must be a positive integer"
    if total is None:  # AWS accepts it absent ("Required: No") but documents no count of trials it then runs
        return (
            "ResourceLimits.MaxNumberOfTrainingJobs is missing: AWS accepts that, but the twin does not model a "
            "tuning job bounded only by MaxRuntimeInSeconds or TuningJobCompletionCriteria; give the count"
        )
    if not _within(total, 1):
        return f"ResourceLimits.MaxNumberOfTrainingJobs is {total!r}; it must be a positive integer"
    runtime = limits.get("MaxRuntimeInSeconds")
    if runtime is not None and not _within(runtime, 120, 15768000):
        return f"ResourceLimits.MaxRuntimeInSeconds is {runtime!r}; it must be 120-15768000"
    return None


def _tuning_objective_defined(request: dict[str, Any], ctx: RuleContext) -> str | None:
    objective = _at(request, ("HyperParameterTuningJobConfig", "HyperParameterTuningJobObjective", "MetricName"))
    if objective is None:
        return None
    defined = {
        metric.get("Name")
        for metric in _items(_at(request, (*_DEFINITION, "AlgorithmSpecification", "MetricDefinitions")))
        if isinstance(metric, Mapping)
    }
    if objective not in defined:
        return f"the objective metric {objective!r} is not among the MetricDefinitions ({sorted(map(str, defined))})"
    return None


def _tuning_static_not_tuned(request: dict[str, Any], ctx: RuleContext) -> str | None:
    ranges = _at(request, ("HyperParameterTuningJobConfig", "ParameterRanges"))
    static = _at(request, (*_DEFINITION, "StaticHyperParameters"))
    if not isinstance(ranges, Mapping) or not isinstance(static, Mapping):
        return None
    tuned = {r.get("Name") for kind in _RANGE_KINDS for r in _items(ranges.get(kind)) if isinstance(r, Mapping)}
    both = sorted(str(name) for name in tuned & set(static))
    return f"{', '.join(both)} both static and tuned" if both else None


def _tuning_early_stopping(request: dict[str, Any], ctx: RuleContext) -> str | None:
    config = _at(request, ("HyperParameterTuningJobConfig",))
    if not isinstance(config, Mapping) or "TrainingJobEarlyStoppingType" not in config:
        return None
    value = config["TrainingJobEarlyStoppingType"]
    if value not in ("Off", "Auto"):
        return f"TrainingJobEarlyStoppingType is {value!r}; it must be Off or Auto"
    if value == "Auto" and config.get("Strategy") == "Hyperband":
        return "TrainingJobEarlyStoppingType must be Off with the Hyperband strategy (it stops trials itself)"
    return None


def _tuning_warm_start(request: dict[str, Any], ctx: RuleContext) -> str | None:
    warm = request.get("WarmStartConfig")
    if warm is None:
        return None
    if not isinstance(warm, Mapping):
        return "WarmStartConfig is not a mapping"
    parents = _items(warm.get("ParentHyperParameterTuningJobs"))
    if not 1 <= len(parents) <= 5:
        return f"WarmStartConfig.ParentHyperParameterTuningJobs holds {len(parents)} jobs; it must hold 1-5"
    if warm.get("WarmStartType") not in ("IdenticalDataAndAlgorithm", "TransferLearning"):
        return f"WarmStartConfig.WarmStartType is {warm.get('WarmStartType')!r}"
    return None


#: HyperParameterAlgorithmSpecification's fields: a tuning job's trials take no ContainerEntrypoint,
#: ContainerArguments, EnableSageMakerMetricsTimeSeries, TrainingImageConfig (CreateTrainingJob's have them)
_TUNING_ALGORITHM_FIELDS = frozenset({"TrainingImage", "TrainingInputMode", "AlgorithmName", "MetricDefinitions"})


def _tuning_algorithm(request: dict[str, Any], ctx: RuleContext) -> str | None:
    algorithm = _at(request, (*_DEFINITION, "AlgorithmSpecification"))
    if not isinstance(algorithm, Mapping):
        return None
    extra = sorted(set(algorithm) - _TUNING_ALGORITHM_FIELDS)
    if extra:
        return f"TrainingJobDefinition.AlgorithmSpecification does not take {', '.join(extra)}"
    if "TrainingInputMode" not in algorithm:
        return "TrainingJobDefinition.AlgorithmSpecification.TrainingInputMode is missing"
    if "AlgorithmName" in algorithm and "TrainingImage" in algorithm:
        return "TrainingJobDefinition.AlgorithmSpecification names both an AlgorithmName and a TrainingImage"
    return None


def _ranges_of(request: dict[str, Any], kind: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in (("HyperParameterTuningJobConfig", "ParameterRanges"), (*_DEFINITION, "HyperParameterRanges")):
        ranges = _at(request, path)
        if isinstance(ranges, Mapping):
            for index, item in enumerate(_items(ranges.get(kind))):
                if isinstance(item, Mapping):
                    yield f"{_name(path)}.{kind}[{index}]", item


def _scaling_problem(field: str, item: Mapping[str, Any], reverse: bool) -> str | None:
    scaling = item.get("ScalingType")
    if scaling not in ("Logarithmic", "ReverseLogarithmic"):
        return None
    try:
        low, high = float(item["MinValue"]), float(item["MaxValue"])
    except (KeyError, TypeError, ValueError):
        return f"{field} has a {scaling} scale without numeric MinValue and MaxValue"
    if scaling == "Logarithmic" and low <= 0:
        return f"{field} ({item.get('Name')}) has a Logarithmic scale from MinValue {item['MinValue']}; it must be > 0"
    if scaling == "ReverseLogarithmic" and reverse and not (low >= 0 and high < 1):
        return f"{field} ({item.get('Name')}) has a ReverseLogarithmic scale outside 0 <= x < 1"
    return None


def _continuous_scaling(request: dict[str, Any], ctx: RuleContext) -> str | None:
    found = (_scaling_problem(f, r, reverse=True) for f, r in _ranges_of(request, "ContinuousParameterRanges"))
    return next((problem for problem in found if problem), None)


def _integer_scaling(request: dict[str, Any], ctx: RuleContext) -> str | None:
    found = (_scaling_problem(f, r, reverse=False) for f, r in _ranges_of(request, "IntegerParameterRanges"))
    return next((problem for problem in found if problem), None)


_TUNING_RULES = (
    Rule(
        "tuning.algorithm-specification",
        TUNING,
        "A tuning job's AlgorithmSpecification holds only TrainingImage or AlgorithmName (not both), "
        "TrainingInputMode (required) and MetricDefinitions.",
        _SM + "API_HyperParameterAlgorithmSpecification.html",
        _tuning_algorithm,
    ),
    Rule(
        "tuning.continuous-range-scaling",
        TUNING,
        "A continuous range on a Logarithmic scale has only values > 0; on a ReverseLogarithmic one, only values "
        "in 0 <= x < 1.",
        _SM + "API_ContinuousParameterRange.html",
        _continuous_scaling,
    ),
    Rule(
        "tuning.integer-range-scaling",
        TUNING,
        "An integer range on a Logarithmic scale has only values > 0.",
        _SM + "API_IntegerParameterRange.html",
        _integer_scaling,
    ),
    # at most 48 variables per training job definition (botocore: HyperParameterTrainingJobEnvironmentMap)
    _environment(
        "tuning.environment",
        TUNING,
        (*_DEFINITION, "Environment"),
        512,
        512,
        _SM + "API_HyperParameterTrainingJobDefinition.html",
        count_max=48,
    ),
    Rule(
        "tuning.objective-metric-defined",
        TUNING,
        "The objective metric of a tuning job of a custom image is one of its MetricDefinitions.",
        "https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-define-metrics-variables.html",
        _tuning_objective_defined,
    ),
    Rule(
        "tuning.static-not-tuned",
        TUNING,
        "StaticHyperParameters holds the hyperparameters that do not change; a tuned one is not also static.",
        _SM + "API_HyperParameterTrainingJobDefinition.html",
        _tuning_static_not_tuned,
    ),
    Rule(
        "tuning.early-stopping-type",
        TUNING,
        "TrainingJobEarlyStoppingType is Off or Auto, and Off with the Hyperband strategy.",
        _SM + "API_HyperParameterTuningJobConfig.html",
        _tuning_early_stopping,
    ),
    Rule(
        "tuning.warm-start",
        TUNING,
        "WarmStartConfig names 1-5 parent tuning jobs and a WarmStartType of IdenticalDataAndAlgorithm or TransferLearning.",
        _SM + "API_HyperParameterTuningJobWarmStartConfig.html",
        _tuning_warm_start,
    ),
    _string(
        "tuning.job-name",
        TUNING,
        ("HyperParameterTuningJobName",),
        r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}",
        32,
        _TUNING_SRC,
    ),
    *_sagemaker_role(
        "tuning",
        TUNING,
        (*_DEFINITION, "RoleArn"),
        _SM + "API_HyperParameterTrainingJobDefinition.html",
        required=False,
    ),
    _one_of(
        "tuning.strategy",
        TUNING,
        ("HyperParameterTuningJobConfig", "Strategy"),
        ("Bayesian", "Random", "Hyperband", "Grid"),
        _SM + "API_HyperParameterTuningJobConfig.html",
    ),
    Rule(
        "tuning.resource-limits",
        TUNING,
        "ResourceLimits has a positive MaxParallelTrainingJobs, a positive MaxNumberOfTrainingJobs (optional on "
        "AWS, required by the twin, which runs that many trials) and a MaxRuntimeInSeconds of 120-15768000.",
        _SM + "API_ResourceLimits.html",
        _tuning_limits,
    ),
    Rule(
        "tuning.parameter-ranges-count",
        TUNING,
        "The ranges of a tuning job hold at most 30 hyperparameters in all.",
        _SM + "API_ParameterRanges.html",
        _tuning_ranges,
    ),
    *_hyperparameters(
        "tuning", TUNING, (*_DEFINITION, "StaticHyperParameters"), _SM + "API_HyperParameterTrainingJobDefinition.html"
    ),
    *_metrics("tuning", TUNING, (*_DEFINITION, "AlgorithmSpecification", "MetricDefinitions")),
    *_channels("tuning", TUNING, (*_DEFINITION, "InputDataConfig")),
    _volume_key(
        "tuning.volume-kms-key-local-storage", TUNING, (*_DEFINITION, "ResourceConfig"), _SM + "API_ResourceConfig.html"
    ),
    _volume_key(
        "tuning.resource-volume-kms-key-local-storage",
        TUNING,
        (*_DEFINITION, "HyperParameterTuningResourceConfig"),
        _SM + "API_HyperParameterTuningResourceConfig.html",
    ),
    _volume_within_local_storage(
        "tuning.volume-size-local-storage",
        TUNING,
        (*_DEFINITION, "HyperParameterTuningResourceConfig"),
        _SM + "API_HyperParameterTuningResourceConfig.html",
    ),
    *_stopping("tuning", TUNING, _DEFINITION),
    _vpc("tuning.vpc-config", TUNING, (*_DEFINITION, "VpcConfig"), _SM + "API_VpcConfig.html"),
    *_tags("tuning", TUNING),
)


# --- sagemaker:CreateModel --------------------------------------------------------------------------------------------

_MODEL_SRC = _reference(MODEL)
_MODEL_SOURCE = _SM + "API_S3ModelDataSource.html"


def _containers(request: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(request.get("PrimaryContainer"), Mapping):
        yield "PrimaryContainer", request["PrimaryContainer"]
    for index, container in enumerate(_items(request.get("Containers"))):
        if isinstance(container, Mapping):
            yield f"Containers[{index}]", container


def _prefix_sources(request: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for where, container in _containers(request):
        source = _at(container, ("ModelDataSource", "S3DataSource"))
        if isinstance(source, Mapping) and source.get("S3DataType") == "S3Prefix":
            yield f"{where}.ModelDataSource.S3DataSource", source


def _model_container(request: dict[str, Any], ctx: RuleContext) -> str | None:
    containers = _items(request.get("Containers"))
    if len(containers) > 15:
        return f"Containers has {len(containers)} items; at most 15 are allowed"
    for where, container in _containers(request):
        image = container.get("Image")
        if image is not None and (not isinstance(image, str) or not re.fullmatch(r"\S{1,255}", image)):
            return f"{where}.Image {image!r} is not 1-255 non-space characters"
    return None


def _prefix_uri(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, source in _prefix_sources(request):
        uri = source.get("S3Uri")
        if not isinstance(uri, str) or not uri.endswith("/"):
            return f"{where}.S3Uri {uri!r} is a key name prefix and must end with '/'"
    return None


def _prefix_compression(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, source in _prefix_sources(request):
        if source.get("CompressionType") != "None":
            return f"{where}.CompressionType is {source.get('CompressionType')!r}; an S3Prefix source is uncompressed (None)"
    return None


def _prefix_object_names(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, source in _prefix_sources(request):
        prefix = source.get("S3Uri")
        if not isinstance(prefix, str) or not prefix.endswith("/"):
            continue  # model.data-source-prefix-uri reports it
        files: set[str] = set()
        for uri in ctx.s3_keys(prefix):
            relative = uri[len(prefix) :]
            parts = relative.split("/")
            bad = next(
                (p for p in parts if not p.strip() or p in (".", "..") or "\0" in p or len(p.encode()) > 255), None
            )
            if bad is not None:
                return f"{where}: object {uri} gives the file name {bad!r} under /opt/ml/model, which SageMaker refuses"
            files.add(relative)
        directories = {"/".join(f.split("/")[:depth]) for f in files for depth in range(1, f.count("/") + 1)}
        clash = sorted(files & directories)
        if clash:
            return f"{where}: {prefix}{clash[0]} is both a file and a directory under the prefix"
    return None


def _model_data_url(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, container in _containers(request):
        url = container.get("ModelDataUrl")
        if url is not None and (
            not isinstance(url, str) or not re.fullmatch(_S3_URI, url) or not url.endswith(".tar.gz")
        ):
            return f"{where}.ModelDataUrl {url!r} does not point to a single .tar.gz archive"
    return None


def _model_environment(request: dict[str, Any], ctx: RuleContext) -> str | None:
    total = 0
    for where, container in _containers(request):
        environment = container.get("Environment")
        problem = _environment_problem(environment, f"{where}.Environment", 1024, 1024)
        if problem is not None:
            return problem
        if isinstance(environment, Mapping):
            total += sum(_utf8_size(key) + _utf8_size(value) for key, value in environment.items())
    return f"the containers' Environment maps hold {total} bytes together; at most 32768" if total > 32768 else None


_MODEL_RULES = (
    _string("model.name", MODEL, ("ModelName",), r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?", 63, _MODEL_SRC),
    *_sagemaker_role("model", MODEL, ("ExecutionRoleArn",), _MODEL_SRC, required=False),
    Rule(
        "model.container",
        MODEL,
        "Containers holds at most 15 containers, and every container's Image is 1-255 non-space characters.",
        _MODEL_SRC,
        _model_container,
    ),
    Rule(
        "model.data-source-prefix-uri",
        MODEL,
        "An S3Prefix ModelDataSource's S3Uri is a key name prefix ending with '/'.",
        _MODEL_SOURCE,
        _prefix_uri,
    ),
    Rule(
        "model.data-source-prefix-compression",
        MODEL,
        "An S3Prefix ModelDataSource is uncompressed: CompressionType None.",
        _MODEL_SOURCE,
        _prefix_compression,
    ),
    Rule(
        "model.data-source-object-names",
        MODEL,
        "The objects under an S3Prefix source give valid, unambiguous file names (no '', '.', '..', folder "
        "markers, names over 255 bytes or file/directory clashes).",
        _MODEL_SOURCE,
        _prefix_object_names,
    ),
    Rule(
        "model.data-url-archive",
        MODEL,
        "ModelDataUrl points to a single gzip-compressed tar archive (.tar.gz).",
        _SM + "API_ContainerDefinition.html",
        _model_data_url,
    ),
    Rule(
        "model.environment",
        MODEL,
        "Each container's Environment has at most 100 entries, keys [a-zA-Z_][a-zA-Z0-9_]* and values of <= 1024 "
        "characters, 32 KB in all across containers.",
        _SM + "API_ContainerDefinition.html",
        _model_environment,
    ),
    _vpc("model.vpc-config", MODEL, ("VpcConfig",), _SM + "API_VpcConfig.html"),
    *_tags("model", MODEL),
)


# --- sagemaker:CreateEndpointConfig -----------------------------------------------------------------------------------

_CONFIG_SRC = _reference(ENDPOINT_CONFIG)
_VARIANT_SRC = _SM + "API_ProductionVariant.html"
_CAPTURE_SRC = _SM + "API_DataCaptureConfig.html"
_CAPTURE = ("DataCaptureConfig",)


def _variants(request: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("ProductionVariants", "ShadowProductionVariants"):
        for index, variant in enumerate(_items(request.get(key))):
            if isinstance(variant, Mapping):
                yield f"{key}[{index}]", variant


def _variant_names(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, variant in _variants(request):
        for key, pattern in (
            ("VariantName", _RESOURCE_NAME),
            ("ModelName", r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"),
        ):
            value = variant.get(key)
            if (value is not None or key == "VariantName") and (
                not isinstance(value, str) or len(value) > 63 or not re.fullmatch(pattern, value)
            ):
                return f"{where}.{key} {value!r} is not 1-63 characters matching {pattern}"
    return None


def _variant_capacity(request: dict[str, Any], ctx: RuleContext) -> str | None:
    for where, variant in _variants(request):
        count, weight = variant.get("InitialInstanceCount"), variant.get("InitialVariantWeight")
        if count is not None and not _within(count, 1):
            return f"{where}.InitialInstanceCount is {count!r}; it must be a positive integer"
        if weight is not None and (not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0):
            return f"{where}.InitialVariantWeight is {weight!r}; it must be a number >= 0"
    return None


def _shadow_variants(request: dict[str, Any], ctx: RuleContext) -> str | None:
    shadows = request.get("ShadowProductionVariants")
    if shadows is None:
        return None
    production = _items(request.get("ProductionVariants"))
    if len(_items(shadows)) != 1 or len(production) != 1:
        return "with ShadowProductionVariants, ProductionVariants and ShadowProductionVariants hold one variant each"
    return None


_ENDPOINT_CONFIG_RULES = (
    _string("endpoint-config.name", ENDPOINT_CONFIG, ("EndpointConfigName",), _RESOURCE_NAME, 63, _CONFIG_SRC),
    _count("endpoint-config.variants-count", ENDPOINT_CONFIG, ("ProductionVariants",), 1, 10, _CONFIG_SRC),
    Rule(
        "endpoint-config.variant-names",
        ENDPOINT_CONFIG,
        "Each variant's VariantName (and ModelName) is 1-63 letters, digits and inner hyphens.",
        _VARIANT_SRC,
        _variant_names,
    ),
    Rule(
        "endpoint-config.variant-capacity",
        ENDPOINT_CONFIG,
        "A variant's InitialInstanceCount is at least 1 and its InitialVariantWeight at least 0.",
        _VARIANT_SRC,
        _variant_capacity,
    ),
    Rule(
        "endpoint-config.shadow-variants",
        ENDPOINT_CONFIG,
        "With ShadowProductionVariants there is exactly one production and one shadow variant.",
        _CONFIG_SRC,
        _shadow_variants,
    ),
    *_sagemaker_role("endpoint-config", ENDPOINT_CONFIG, ("ExecutionRoleArn",), _CONFIG_SRC, required=False),
    _vpc("endpoint-config.vpc-config", ENDPOINT_CONFIG, ("VpcConfig",), _SM + "API_VpcConfig.html"),
    _in_range(
        "endpoint-config.data-capture-sampling",
        ENDPOINT_CONFIG,
        (*_CAPTURE, "InitialSamplingPercentage"),
        0,
        100,
        _CAPTURE_SRC,
    ),
    _count("endpoint-config.data-capture-options", ENDPOINT_CONFIG, (*_CAPTURE, "CaptureOptions"), 1, 32, _CAPTURE_SRC),
    _string(
        "endpoint-config.data-capture-destination",
        ENDPOINT_CONFIG,
        (*_CAPTURE, "DestinationS3Uri"),
        r"(https|s3)://([^/])/?(.*)",
        512,
        _CAPTURE_SRC,
        required=False,
    ),
    *_tags("endpoint-config", ENDPOINT_CONFIG),
)


# --- sagemaker:CreateEndpoint / UpdateEndpoint ------------------------------------------------------------------------

_DEPLOYMENT_SRC = _SM + "API_DeploymentConfig.html"


def _deployment_config(request: dict[str, Any], ctx: RuleContext) -> str | None:
    config = request.get("DeploymentConfig")
    if not isinstance(config, Mapping):
        return None
    if "BlueGreenUpdatePolicy" in config and "RollingUpdatePolicy" in config:
        return "DeploymentConfig has both BlueGreenUpdatePolicy and RollingUpdatePolicy; only one update policy is used"
    alarms = _at(config, ("AutoRollbackConfiguration", "Alarms"))
    if alarms is not None and not 1 <= len(_items(alarms)) <= 10:
        return "DeploymentConfig.AutoRollbackConfiguration.Alarms must hold 1-10 alarms"
    policy = config.get("BlueGreenUpdatePolicy")
    if not isinstance(policy, Mapping):
        return None
    routing = policy.get("TrafficRoutingConfiguration")
    routing = routing if isinstance(routing, Mapping) else {}
    where = "DeploymentConfig.BlueGreenUpdatePolicy"
    kind = routing.get("Type")
    if kind not in ("ALL_AT_ONCE", "CANARY", "LINEAR"):
        return f"{where}.TrafficRoutingConfiguration.Type {kind!r} is not ALL_AT_ONCE, CANARY or LINEAR"
    wait, termination = routing.get("WaitIntervalInSeconds"), policy.get("TerminationWaitInSeconds", 0)
    for name, value in (
        ("TrafficRoutingConfiguration.WaitIntervalInSeconds", wait),
        ("TerminationWaitInSeconds", termination),
    ):
        if not _within(value, 0, 3600):
            return f"{where}.{name} is {value!r}; it must be 0-3600"
    step_key, low = {"CANARY": ("CanarySize", 1), "LINEAR": ("LinearStepSize", 10)}.get(kind, ("", 0))
    step = routing.get(step_key) if step_key else None
    if step_key and not isinstance(step, Mapping):
        return f"{where}.TrafficRoutingConfiguration.{step_key} is missing for {kind}"
    if isinstance(step, Mapping) and step.get("Type") == "CAPACITY_PERCENT":
        value = step.get("Value")
        if not _within(value, low, 50):
            return f"{where}.TrafficRoutingConfiguration.{step_key}.Value is {value!r}%; it must be {low}-50% of the variant's instances"
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is not None:
        if not _within(timeout, 600, 28800):
            return f"{where}.MaximumExecutionTimeoutInSeconds is {timeout!r}; it must be 600-28800"
        if timeout <= wait + termination:
            return f"{where}.MaximumExecutionTimeoutInSeconds {timeout} is not larger than the waits it must cover ({wait + termination})"
    return None


def _endpoint_rules(prefix: str, api: str) -> tuple[Rule, ...]:
    source = _reference(api)
    return (
        _string(f"{prefix}.name", api, ("EndpointName",), _RESOURCE_NAME, 63, source),
        _string(f"{prefix}.config-name", api, ("EndpointConfigName",), _RESOURCE_NAME, 63, source),
        Rule(
            f"{prefix}.deployment-config",
            api,
            "A blue/green DeploymentConfig uses one policy, a canary of at most 50% (linear steps 10-50%), waits of "
            "0-3600 s and a timeout of 600-28800 s larger than its waits, with 1-10 rollback alarms.",
            _DEPLOYMENT_SRC,
            _deployment_config,
        ),
    )


_ROUTING_SRC = _SM + "API_TrafficRoutingConfig.html"
_EXCLUSIONS_SRC = "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html"


def _blue_green_policy(request: dict[str, Any]) -> Mapping[str, Any] | None:
    policy = _at(request, ("DeploymentConfig", "BlueGreenUpdatePolicy"))
    return policy if isinstance(policy, Mapping) else None


def _production_counts(config: Mapping[str, Any]) -> dict[str, int]:
    variants = [v for v in _items(config.get("ProductionVariants")) if isinstance(v, Mapping)]
    return {str(v.get("VariantName")): _int(v.get("InitialInstanceCount")) or 0 for v in variants}


def _step_size(request: dict[str, Any], ctx: RuleContext) -> str | None:
    """A canary (or a linear step) is a number of the new fleet's instances: INSTANCE_COUNT says it, a
    CAPACITY_PERCENT of the variant's instances is at least one whole instance."""
    routing = _at(_blue_green_policy(request) or {}, ("TrafficRoutingConfiguration",))
    if not isinstance(routing, Mapping):
        return None
    step_key = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}.get(str(routing.get("Type")))
    step = routing.get(step_key) if step_key else None
    config = ctx.endpoint_config(str(request.get("EndpointConfigName")))
    if not isinstance(step, Mapping) or config is None or _int(step.get("Value")) is None:
        return None  # a missing size or configuration is reported by other rules (or by SageMaker's own checks)
    value = int(step["Value"])
    for variant, count in _production_counts(config).items():
        instances = value if step.get("Type") == "INSTANCE_COUNT" else max(1, math.ceil(count * value / 100))
        if 2 * instances > count:
            return (
                f"{step_key} {step.get('Type')} {value} is {instances} of variant {variant}'s {count} instance(s); "
                "it must be at most 50% of the variant's total instance count"
            )
    return None


def _kept_variant_names(request: dict[str, Any], ctx: RuleContext) -> str | None:
    if _blue_green_policy(request) is None:
        return None
    current = ctx.endpoint_config_name(str(request.get("EndpointName")))
    old = ctx.endpoint_config(current) if current else None
    new = ctx.endpoint_config(str(request.get("EndpointConfigName")))
    if old is None or new is None:
        return None
    before, after = sorted(_production_counts(old)), sorted(_production_counts(new))
    if before != after:
        return (
            f"a blue/green update from {current} (variants {before}) to {request.get('EndpointConfigName')} "
            f"(variants {after}) changes the variant names; guardrails need the old configuration's names"
        )
    return None


_ENDPOINT_RULES = (*_endpoint_rules("endpoint", ENDPOINT), *_tags("endpoint", ENDPOINT))
_UPDATE_ENDPOINT_RULES = (
    *_endpoint_rules("endpoint-update", UPDATE_ENDPOINT),
    Rule(
        "endpoint-update.traffic-step-size",
        UPDATE_ENDPOINT,
        "A canary (or linear step) is at most 50% of each variant's total instance count in the new configuration, "
        "a percentage of capacity counting at least one instance.",
        _ROUTING_SRC,
        _step_size,
    ),
    Rule(
        "endpoint-update.blue-green-variant-names",
        UPDATE_ENDPOINT,
        "A blue/green update's new endpoint configuration keeps the old configuration's variant names.",
        _EXCLUSIONS_SRC,
        _kept_variant_names,
    ),
)


# --- sagemaker:InvokeEndpoint (sagemaker-runtime) ---------------------------------------------------------------------

_INVOKE_SRC = _SM + "API_runtime_InvokeEndpoint.html"
_MAX_PAYLOAD = 6 * 2**20


def _payload_size(request: dict[str, Any], ctx: RuleContext) -> str | None:
    body = request.get("Body")
    if body is None:
        return "Body is missing"
    size = _utf8_size(body)
    return (
        f"Body is {size} bytes; a real-time endpoint accepts at most {_MAX_PAYLOAD} (6 MB)"
        if size > _MAX_PAYLOAD
        else None
    )


_INVOKE_RULES = (
    _string(
        "invoke.endpoint-name", INVOKE_ENDPOINT, ("EndpointName",), r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", 63, _INVOKE_SRC
    ),
    Rule(
        "invoke.payload-size",
        INVOKE_ENDPOINT,
        "The request Body of a real-time invocation is at most 6 MB.",
        _INVOKE_SRC,
        _payload_size,
    ),
)


# --- bedrock:CreateModelImportJob -------------------------------------------------------------------------------------

_IMPORT_URI = ("modelDataSource", "s3DataSource", "s3Uri")


def _import_required(request: dict[str, Any], ctx: RuleContext) -> str | None:
    missing = [
        _name(path)
        for path in (("jobName",), ("importedModelName",), ("roleArn",), _IMPORT_URI)
        if _at(request, path) is None
    ]
    return f"missing required {', '.join(missing)}" if missing else None


def _import_files(request: dict[str, Any], ctx: RuleContext) -> str | None:
    prefix = _at(request, _IMPORT_URI)
    if not isinstance(prefix, str):
        return None
    names = {uri.rstrip("/").rsplit("/", 1)[-1] for uri in ctx.s3_keys(prefix.rstrip("/") + "/")}
    missing = [name for name in ("config.json", "tokenizer_config.json") if name not in names]
    if not any(name.endswith(".safetensors") for name in names):
        missing.append("*.safetensors weights")
    if not names & {"tokenizer.json", "tokenizer.model"}:
        missing.append("tokenizer.json or tokenizer.model")
    return (
        f"{_name(_IMPORT_URI)} {prefix} lacks {', '.join(missing)} (Hugging Face weights format)" if missing else None
    )


_IMPORT_RULES = (
    Rule(
        "bedrock-import.required",
        MODEL_IMPORT,
        "jobName, importedModelName, roleArn and modelDataSource.s3DataSource.s3Uri are given.",
        _BEDROCK,
        _import_required,
    ),
    _string(
        "bedrock-import.job-name",
        MODEL_IMPORT,
        ("jobName",),
        r"[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*",
        63,
        _BEDROCK,
        required=False,
    ),
    _string(
        "bedrock-import.model-name",
        MODEL_IMPORT,
        ("importedModelName",),
        r"([0-9a-zA-Z][_-]?)+",
        63,
        _BEDROCK,
        required=False,
    ),
    _string(
        "bedrock-import.role-arn",
        MODEL_IMPORT,
        ("roleArn",),
        r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+",
        2048,
        _BEDROCK,
        required=False,
    ),
    _trusted_role(
        "bedrock-import.role-trusted",
        MODEL_IMPORT,
        ("roleArn",),
        "bedrock.amazonaws.com",
        _BEDROCK_ROLE,
        required=False,
    ),
    _string(
        "bedrock-import.s3-uri",
        MODEL_IMPORT,
        _IMPORT_URI,
        r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?",
        1024,
        _BEDROCK,
        required=False,
    ),
    Rule(
        "bedrock-import.model-files",
        MODEL_IMPORT,
        "The imported folder holds the model in Hugging Face weights format: .safetensors weights, config.json and the tokenizer files.",
        _BEDROCK_FILES,
        _import_files,
    ),
    _vpc(
        "bedrock-import.vpc-config",
        MODEL_IMPORT,
        ("vpcConfig",),
        "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_VpcConfig.html",
        "subnetIds",
        "securityGroupIds",
    ),
    _string(
        "bedrock-import.kms-key",
        MODEL_IMPORT,
        ("importedModelKmsKeyId",),
        r"(arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)",
        2048,
        _BEDROCK,
        required=False,
    ),
)


# --- states:StartExecution --------------------------------------------------------------------------------------------

_FORBIDDEN_IN_EXECUTION_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def _execution_name(request: dict[str, Any], ctx: RuleContext) -> str | None:
    name = request.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not 1 <= len(name) <= 80:
        return f"name {name!r} is not 1-80 characters"
    bad = _FORBIDDEN_IN_EXECUTION_NAME.search(name)
    return f"name {name!r} contains {bad.group()!r}, which an execution name must not contain" if bad else None


def _execution_input(request: dict[str, Any], ctx: RuleContext) -> str | None:
    text = request.get("input")
    if text is None:
        return None
    if not isinstance(text, str):
        return f"input is {type(text).__name__}; it is a string of JSON"
    try:
        json.loads(text)
    except ValueError as exc:
        return f"input is not JSON ({exc})"
    return None


def _execution_input_size(request: dict[str, Any], ctx: RuleContext) -> str | None:
    text = request.get("input")
    size = _utf8_size(text) if text is not None else 0
    return f"input is {size} bytes in UTF-8; at most 262144 (256 KiB)" if size > 262144 else None


_EXECUTION_RULES = (
    Rule(
        "execution.name",
        START_EXECUTION,
        'An execution name is 1-80 characters with no white space, brackets, wildcards, " # % \\ ^ | ~ ` $ & , ; : / or control characters.',
        _STATES,
        _execution_name,
    ),
    Rule("execution.input-json", START_EXECUTION, "input is a string of JSON.", _STATES, _execution_input),
    Rule(
        "execution.input-size",
        START_EXECUTION,
        "input is at most 262144 bytes in UTF-8.",
        _STATES,
        _execution_input_size,
    ),
)


# --- scheduler:CreateSchedule / UpdateSchedule ------------------------------------------------------------------------

_AT = re.compile(r"at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)")
_RATE = re.compile(r"rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((.+)\)")
#: targets whose input must be well-formed JSON: templated Lambda, Step Functions and EventBridge targets
_JSON_TARGETS = re.compile(r"arn:aws[a-z-]*:(lambda|states|events):.*")


def _schedule_expression(request: dict[str, Any], ctx: RuleContext) -> str | None:
    expression = request.get("ScheduleExpression")
    if not isinstance(expression, str) or len(expression) > 256:
        return f"ScheduleExpression {expression!r} is not a string of at most 256 characters"
    if _AT.fullmatch(expression) or _RATE.fullmatch(expression) or _CRON.fullmatch(expression):
        return None
    return f"ScheduleExpression {expression!r} is not at(yyyy-mm-ddThh:mm:ss), rate(<positive integer> <unit>) or cron(...)"


def _cron_fields(request: dict[str, Any], ctx: RuleContext) -> str | None:
    expression = request.get("ScheduleExpression")
    cron = _CRON.fullmatch(expression) if isinstance(expression, str) else None
    if cron is None:
        return None
    fields = cron.group(1).split()
    if len(fields) != 6:
        return f"ScheduleExpression {expression!r} has {len(fields)} fields; cron takes six (minutes hours day-of-month month day-of-week year)"
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        return f"ScheduleExpression {expression!r}: exactly one of day-of-month and day-of-week must be '?'"
    return None


def _flexible_window(request: dict[str, Any], ctx: RuleContext) -> str | None:
    window = request.get("FlexibleTimeWindow")
    if not isinstance(window, Mapping):
        return "FlexibleTimeWindow is missing"
    if window.get("Mode") not in ("OFF", "FLEXIBLE"):
        return f"FlexibleTimeWindow.Mode {window.get('Mode')!r} is not OFF or FLEXIBLE"
    minutes = window.get("MaximumWindowInMinutes")
    if minutes is not None and not _within(minutes, 1, 1440):
        return f"FlexibleTimeWindow.MaximumWindowInMinutes is {minutes!r}; it must be 1-1440"
    return None


def _schedule_target(request: dict[str, Any], ctx: RuleContext) -> str | None:
    target = request.get("Target")
    missing = [key for key in ("Arn", "RoleArn") if not isinstance(target, Mapping) or not target.get(key)]
    return f"Target lacks {' and '.join(missing)}" if missing else None


def _target_input(request: dict[str, Any], ctx: RuleContext) -> str | None:
    target = request.get("Target")
    if not isinstance(target, Mapping) or target.get("Input") is None:
        return None
    text = target["Input"]
    if _utf8_size(text) > 256 * 1024:
        return f"Target.Input is {_utf8_size(text)} bytes; at most 256 KB"
    if _JSON_TARGETS.fullmatch(str(target.get("Arn", ""))):
        try:
            json.loads(text)
        except (TypeError, ValueError) as exc:
            return f"Target.Input for {target['Arn']} must be well-formed JSON ({exc})"
    return None


def _schedule_rules(prefix: str, api: str) -> tuple[Rule, ...]:
    source = _reference(api)
    return (
        _string(f"{prefix}.name", api, ("Name",), r"[0-9a-zA-Z-_.]+", 64, source),
        _string(f"{prefix}.group-name", api, ("GroupName",), r"[0-9a-zA-Z-_.]+", 64, source, required=False),
        Rule(
            f"{prefix}.expression",
            api,
            "ScheduleExpression is at(yyyy-mm-ddThh:mm:ss), rate(value unit) with a positive integer and "
            "minute(s), hour(s) or day(s), or cron(fields).",
            _SCHEDULE_TYPES,
            _schedule_expression,
        ),
        Rule(
            f"{prefix}.cron-fields",
            api,
            "A cron expression has six fields and '?' in exactly one of day-of-month and day-of-week.",
            _SCHEDULE_TYPES,
            _cron_fields,
        ),
        Rule(
            f"{prefix}.flexible-time-window",
            api,
            "FlexibleTimeWindow is given, Mode OFF or FLEXIBLE, with a window of 1-1440 minutes.",
            source,
            _flexible_window,
        ),
        Rule(f"{prefix}.target", api, "Target has an Arn and a RoleArn.", source, _schedule_target),
        _string(
            f"{prefix}.role-arn",
            api,
            ("Target", "RoleArn"),
            r"arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+",
            1600,
            _SCHEDULER + "API_Target.html",
            required=False,
        ),
        _trusted_role(
            f"{prefix}.role-trusted",
            api,
            ("Target", "RoleArn"),
            "scheduler.amazonaws.com",
            _SCHEDULER_ROLE,
            required=False,
        ),
        Rule(
            f"{prefix}.target-input",
            api,
            "Target.Input is at most 256 KB, and well-formed JSON for Lambda, Step Functions and EventBridge targets.",
            _SCHEDULER + "API_Target.html",
            _target_input,
        ),
    )


# --- sns:Publish ------------------------------------------------------------------------------------------------------

_MAX_MESSAGE = 256 * 1024


def _publish_target(request: dict[str, Any], ctx: RuleContext) -> str | None:
    given = [key for key in ("TopicArn", "TargetArn", "PhoneNumber") if request.get(key)]
    return (
        None if len(given) == 1 else f"Publish names {len(given)} of TopicArn, TargetArn and PhoneNumber; exactly one"
    )


def _subject(request: dict[str, Any], ctx: RuleContext) -> str | None:
    subject = request.get("Subject")
    if subject is None:
        return None
    if not isinstance(subject, str) or not subject or len(subject) >= 100:
        return f"Subject {subject!r} is not 1-99 characters"
    bad = next((ch for ch in subject if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
    return f"Subject {subject!r} contains the line break or control character {bad!r}" if bad else None


def _message_size(request: dict[str, Any], ctx: RuleContext) -> str | None:
    message = request.get("Message")
    if not isinstance(message, str) or not message:
        return "Message is missing or empty"
    size = _utf8_size(message)
    for name, attribute in (request.get("MessageAttributes") or {}).items():
        size += _utf8_size(name)
        if isinstance(attribute, Mapping):
            size += sum(_utf8_size(attribute.get(key, "")) for key in ("DataType", "StringValue", "BinaryValue"))
    return (
        f"Message and its attributes are {size} bytes; a topic takes at most {_MAX_MESSAGE} by default"
        if size > _MAX_MESSAGE
        else None
    )


def _message_structure(request: dict[str, Any], ctx: RuleContext) -> str | None:
    if request.get("MessageStructure") is None:
        return None
    if request["MessageStructure"] != "json":
        return f"MessageStructure is {request['MessageStructure']!r}; the only valid value is json"
    try:
        body = json.loads(request.get("Message") or "")
    except ValueError:
        return "MessageStructure is json but Message is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("default"), str):
        return "MessageStructure is json but Message has no top-level string 'default'"
    return None


_PUBLISH_RULES = (
    Rule(
        "publish.target",
        PUBLISH,
        "A message goes to exactly one of TopicArn, TargetArn and PhoneNumber.",
        _SNS,
        _publish_target,
    ),
    Rule(
        "publish.subject",
        PUBLISH,
        "Subject is UTF-8 text with no line breaks or control characters, less than 100 characters long.",
        _SNS,
        _subject,
    ),
    Rule(
        "publish.message-size",
        PUBLISH,
        "Message is non-empty and, with its attributes, at most 256 KiB (a topic's default maximum).",
        _SNS,
        _message_size,
    ),
    Rule(
        "publish.message-structure",
        PUBLISH,
        "With MessageStructure json, Message is a JSON object with a top-level string 'default'.",
        _SNS,
        _message_structure,
    ),
)


# --- the table --------------------------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    *_TRAINING_RULES,
    *_PROCESSING_RULES,
    *_TUNING_RULES,
    *_MODEL_RULES,
    *_ENDPOINT_CONFIG_RULES,
    *_ENDPOINT_RULES,
    *_UPDATE_ENDPOINT_RULES,
    *_INVOKE_RULES,
    *_IMPORT_RULES,
    *_EXECUTION_RULES,
    *_schedule_rules("schedule", CREATE_SCHEDULE),
    *_schedule_rules("schedule-update", UPDATE_SCHEDULE),
    *_PUBLISH_RULES,
)

_BY_API: dict[str, list[Rule]] = {}
for _rule in RULES:
    _BY_API.setdefault(_rule.api, []).append(_rule)


def check(api: str, request: dict[str, Any], ctx: RuleContext) -> list[str]:
    """Every rule of ``api`` that ``request`` breaks, as ``"rule-id: message (source)"``, in table order.

    An API without rules (Describe*, List*, Stop*) has nothing to break: the result is empty.
    """
    return [
        f"{rule.id}: {message} ({rule.source})"
        for rule in _BY_API.get(api, ())
        if (message := rule.check(request, ctx)) is not None
    ]
