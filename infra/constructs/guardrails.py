"""Preventive IAM for the roles that send SageMaker requests: deny statements that refuse a request missing
a control, whatever the state machine definition or a function's code asks for, and the KMS grant that
SageMaker needs to encrypt the volumes those requests name.

Condition keys per action are the Service Authorization Reference's
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html):
CreateTrainingJob, CreateProcessingJob and CreateHyperParameterTuningJob take sagemaker:NetworkIsolation,
VpcSubnets, VolumeKmsKey, InterContainerTrafficEncryption and InstanceTypes; CreateModel takes
NetworkIsolation and VpcSubnets; CreateEndpointConfig takes VolumeKmsKey and InstanceTypes.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from trainforge.instances import nvme_type_patterns

JOB_ACTIONS = [
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateHyperParameterTuningJob",
]


def _without_volume_key() -> dict[str, dict[str, object]]:
    """No volume key on a type whose storage is EBS. Types with local NVMe storage encrypt it in hardware
    and SageMaker refuses a key for them (ResourceConfig.VolumeKmsKeyId, ProcessingClusterConfig.VolumeKmsKeyId,
    CreateEndpointConfig.KmsKeyId: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html). The condition
    names the NVMe families (``trainforge.instances``) rather than the EBS ones, so a type the table does not
    know still has to bring a key."""
    return {
        "Null": {"sagemaker:VolumeKmsKey": "true"},
        "ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": nvme_type_patterns()},
    }


def _deny(sid: str, actions: list[str], condition: dict[str, dict[str, object]]) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, effect=iam.Effect.DENY, actions=actions, resources=["*"], conditions=condition)


def job_guardrails(allowed_instance_types: list[str]) -> list[iam.PolicyStatement]:
    """Training, processing and tuning jobs: one deny per missing control, so any single gap refuses the job."""
    conditions = {
        "DenyWithoutNetworkIsolation": {"Bool": {"sagemaker:NetworkIsolation": "false"}},
        "DenyWithoutNetworkIsolationKey": {"Null": {"sagemaker:NetworkIsolation": "true"}},
        "DenyOutsideVpc": {"Null": {"sagemaker:VpcSubnets": "true"}},
        "DenyWithoutVolumeKmsKey": _without_volume_key(),
        "DenyWithoutInterContainerEncryption": {"Bool": {"sagemaker:InterContainerTrafficEncryption": "false"}},
        "DenyWithoutInterContainerEncryptionKey": {"Null": {"sagemaker:InterContainerTrafficEncryption": "true"}},
        "DenyOtherInstanceTypes": {"ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": allowed_instance_types}},
    }
    return [_deny(sid, JOB_ACTIONS, condition) for sid, condition in conditions.items()]


def endpoint_guardrails(allowed_instance_types: list[str]) -> list[iam.PolicyStatement]:
    """Models and endpoint configurations: isolated, in the VPC, EBS volumes encrypted, allowed types only."""
    model, config = ["sagemaker:CreateModel"], ["sagemaker:CreateEndpointConfig"]
    return [
        _deny("DenyModelWithoutNetworkIsolation", model, {"Bool": {"sagemaker:NetworkIsolation": "false"}}),
        _deny("DenyModelWithoutNetworkIsolationKey", model, {"Null": {"sagemaker:NetworkIsolation": "true"}}),
        _deny("DenyModelOutsideVpc", model, {"Null": {"sagemaker:VpcSubnets": "true"}}),
        _deny("DenyEndpointConfigWithoutVolumeKmsKey", config, _without_volume_key()),
        _deny(
            "DenyEndpointConfigOtherInstanceTypes",
            config,
            {"ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": allowed_instance_types}},
        ),
    ]


def volume_key_grants(key: kms.IKey) -> list[iam.PolicyStatement]:
    """SageMaker encrypts a job's or an endpoint's EBS volumes through a grant that the caller creates on the
    key (kms:CreateGrant and kms:DescribeKey for CreateTrainingJob, CreateProcessingJob and
    CreateEndpointConfig with a key: https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html),
    and only for an AWS resource
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-grant-is-for-aws-resource).
    DescribeKey has no grant in its request context, so it gets a statement of its own."""
    return [
        iam.PolicyStatement(
            sid="SageMakerVolumeGrants",
            actions=["kms:CreateGrant"],
            resources=[key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        iam.PolicyStatement(sid="DescribeVolumeKey", actions=["kms:DescribeKey"], resources=[key.key_arn]),
    ]
