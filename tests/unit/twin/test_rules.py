"""The twin's rule table: every rule lets a request that obeys it pass and reports, by its id, one that breaks it.

Each API has a baseline request shaped like the pipeline's own (a g5 training job, the evaluation job, the
model and endpoint of a deploy, ...), which obeys every rule. Each case breaks one rule of that baseline;
the table must report the case under that rule's id. A second set of variants obeys the conditional rules in
their other branch (a volume key on an EBS-only type, a spot job with its wait) and must pass whole.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import botocore.model
import botocore.session
import pytest

from tests.twin import rules
from tests.twin.rules import RULES, Rule, check

ACCOUNT = "123456789012"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/trainforge-sagemaker"
BEDROCK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/trainforge-bedrock-import"
SCHEDULER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/trainforge-scheduler"
LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/trainforge-function"
MISSING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/deleted"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/trainforge-training:1.0"
MODEL_PREFIX = "s3://artifacts/runs/support-assistant-3f2a9c1b7d4e/train/output/model/"
FOLDER_MARKER_PREFIX = "s3://artifacts/uploaded-with-console/"
CLASH_PREFIX = "s3://artifacts/ambiguous/"
EMPTY_PREFIX = "s3://artifacts/empty/"
VPC = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a", "subnet-0b"]}
TAGS = [{"Key": "trainforge:run-id", "Value": "support-assistant-3f2a9c1b7d4e"}]


class StubContext:
    """A stub of the twin's RuleContext (our interface, not boto3): roles and objects from literals."""

    def __init__(self) -> None:
        self.roles = {
            SAGEMAKER_ROLE: {"sagemaker.amazonaws.com"},
            BEDROCK_ROLE: {"bedrock.amazonaws.com"},
            SCHEDULER_ROLE: {"scheduler.amazonaws.com"},
            LAMBDA_ROLE: {"lambda.amazonaws.com"},
        }
        self.objects = [
            *(MODEL_PREFIX + name for name in ("config.json", "model.safetensors", "tokenizer.json")),
            *(MODEL_PREFIX + name for name in ("tokenizer_config.json", "generation_config.json")),
            FOLDER_MARKER_PREFIX + "config.json",
            FOLDER_MARKER_PREFIX + "weights/",
            CLASH_PREFIX + "weights",
            CLASH_PREFIX + "weights/part1",
            EMPTY_PREFIX + "README.md",
        ]

    def role_trust_principals(self, role_arn: str) -> set[str] | None:
        return self.roles.get(role_arn)

    def s3_keys(self, uri: str) -> list[str]:
        return [key for key in self.objects if key.startswith(uri)]

    def endpoint_config(self, name: str) -> dict[str, Any] | None:
        """v3 runs on the endpoint; v4 replaces it (two instances, the same variant name)."""
        variants = {
            "support-assistant-v3-3f2a9c1b7d4e": [_variant() | {"InitialInstanceCount": 2}],
            "support-assistant-v4-9e8d7c6b5a41": [_variant() | {"InitialInstanceCount": 2}],
            "support-assistant-v4-one-instance": [_variant()],
            "support-assistant-v4-renamed": [_variant("v4") | {"InitialInstanceCount": 2}],
        }.get(name)
        return None if variants is None else {"EndpointConfigName": name, "ProductionVariants": variants}

    def endpoint_config_name(self, endpoint: str) -> str | None:
        return {"support-assistant": "support-assistant-v3-3f2a9c1b7d4e"}.get(endpoint)


CTX = StubContext()


# --- baselines: what the pipeline sends, obeying every rule -----------------------------------------------------------


def _channel(name: str, uri: str) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": source}}


def _algorithm() -> dict[str, Any]:
    metrics = [{"Name": "train:loss", "Regex": '"loss": ([0-9.eE+-]+)'}]
    return {"TrainingImage": IMAGE, "TrainingInputMode": "File", "MetricDefinitions": metrics}


def _training() -> dict[str, Any]:
    return {
        "TrainingJobName": "support-assistant-3f2a9c1b7d4e-0",
        "AlgorithmSpecification": _algorithm(),
        "RoleArn": SAGEMAKER_ROLE,
        "InputDataConfig": [
            _channel("train", "s3://data/datasets/support/train.jsonl"),
            _channel("base_model", "s3://artifacts/base-models/lite/"),
        ],
        "HyperParameters": {"epochs": "2", "learning_rate": "0.0002", "spec_sha256": "0" * 64},
        "OutputDataConfig": {"S3OutputPath": "s3://artifacts/runs/r/train/output", "KmsKeyId": KEY},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 200},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CheckpointConfig": {"S3Uri": "s3://artifacts/runs/r/train/checkpoints"},
        "VpcConfig": copy.deepcopy(VPC),
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "Environment": {"TRAINFORGE_PROCESSES_PER_NODE": "1"},
        "Tags": copy.deepcopy(TAGS),
    }


def _processing() -> dict[str, Any]:
    s3_input = {
        "S3Uri": MODEL_PREFIX,
        "LocalPath": "/opt/ml/processing/input/model",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
    }
    s3_output = {"S3Uri": "s3://artifacts/runs/r/evaluation/", "LocalPath": "/opt/ml/processing/output"}
    return {
        "ProcessingJobName": "support-assistant-3f2a9c1b7d4e-eval-0",
        "RoleArn": SAGEMAKER_ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["trainforge-evaluate"]},
        "ProcessingInputs": [{"InputName": "model", "S3Input": s3_input}],
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "report", "S3Output": {**s3_output, "S3UploadMode": "EndOfJob"}}],
            "KmsKeyId": KEY,
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge", "VolumeSizeInGB": 100}
        },
        "NetworkConfig": {"EnableNetworkIsolation": True, "VpcConfig": copy.deepcopy(VPC)},
        "StoppingCondition": {"MaxRuntimeInSeconds": 21600},
        "Environment": {"HF_HUB_OFFLINE": "1"},
        "Tags": copy.deepcopy(TAGS),
    }


def _tuning() -> dict[str, Any]:
    training = _training()
    ranges = [{"Name": "learning_rate", "MinValue": "0.00001", "MaxValue": "0.001", "ScalingType": "Logarithmic"}]
    return {
        "HyperParameterTuningJobName": "support-3f2a9c1b7d4e",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "train:loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"ContinuousParameterRanges": ranges},
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {k: v for k, v in training["HyperParameters"].items() if k != "learning_rate"},
            **{key: training[key] for key in ("AlgorithmSpecification", "RoleArn", "InputDataConfig")},
            **{key: training[key] for key in ("OutputDataConfig", "ResourceConfig", "StoppingCondition", "VpcConfig")},
        },
        "Tags": copy.deepcopy(TAGS),
    }


def _model() -> dict[str, Any]:
    source = {"S3Uri": MODEL_PREFIX, "S3DataType": "S3Prefix", "CompressionType": "None"}
    return {
        "ModelName": "support-assistant-v3-3f2a9c1b7d4e",
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataSource": {"S3DataSource": source},
            "Environment": {"TRAINFORGE_MODEL_NAME": "support-assistant", "HF_HUB_OFFLINE": "1"},
        },
        "ExecutionRoleArn": SAGEMAKER_ROLE,
        "EnableNetworkIsolation": True,
        "VpcConfig": copy.deepcopy(VPC),
    }


def _variant(name: str = "AllTraffic") -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": "support-assistant-v3-3f2a9c1b7d4e",
        "InstanceType": "ml.g5.xlarge",
        "InitialInstanceCount": 1,
    }


def _endpoint_config() -> dict[str, Any]:
    # KmsKeyId beside a g5 (local NVMe) variant: the current API reference says the key then does not encrypt
    # the instance storage, no longer that the call fails.
    return {
        "EndpointConfigName": "support-assistant-v3-3f2a9c1b7d4e",
        "ProductionVariants": [_variant()],
        "KmsKeyId": KEY,
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 20,
            "DestinationS3Uri": "s3://artifacts/capture",
            "KmsKeyId": KEY,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
    }


def _blue_green() -> dict[str, Any]:
    routing = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 300}
    policy = {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 300}
    return {
        "BlueGreenUpdatePolicy": {**policy, "MaximumExecutionTimeoutInSeconds": 1800},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "support-assistant-5xx"}]},
    }


def _endpoint() -> dict[str, Any]:
    return {
        "EndpointName": "support-assistant",
        "EndpointConfigName": "support-assistant-v3-3f2a9c1b7d4e",
        "Tags": copy.deepcopy(TAGS),
    }


def _update_endpoint() -> dict[str, Any]:
    return {
        "EndpointName": "support-assistant",
        "EndpointConfigName": "support-assistant-v4-9e8d7c6b5a41",
        "DeploymentConfig": _blue_green(),
    }


def _invoke() -> dict[str, Any]:
    return {"EndpointName": "support-assistant", "Body": b'{"inputs": "Hello"}', "ContentType": "application/json"}


def _model_import() -> dict[str, Any]:
    return {
        "jobName": "support-assistant-v3-3f2a9c1b7d4e",
        "importedModelName": "support-assistant-v3-3f2a9c1b7d4e",
        "roleArn": BEDROCK_ROLE,
        "modelDataSource": {"s3DataSource": {"s3Uri": MODEL_PREFIX}},
        "importedModelKmsKeyId": KEY,
        "vpcConfig": {"subnetIds": ["subnet-0a"], "securityGroupIds": ["sg-0123456789abcdef0"]},
    }


def _execution() -> dict[str, Any]:
    return {
        "stateMachineArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:trainforge-pipeline",
        "name": "support-assistant-3f2a9c1b7d4e",
        "input": json.dumps({"run": {"run_id": "support-assistant-3f2a9c1b7d4e"}}),
    }


def _schedule() -> dict[str, Any]:
    return {
        "Name": "support-assistant",
        "GroupName": "trainforge-retrain",
        "ScheduleExpression": "rate(7 days)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:trainforge-retrain",
            "RoleArn": SCHEDULER_ROLE,
            "Input": json.dumps({"job_name": "support-assistant"}),
        },
    }


def _publish() -> dict[str, Any]:
    return {
        "TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:trainforge-runs",
        "Subject": "TrainForge run succeeded",
        "Message": "Run support-assistant-3f2a9c1b7d4e succeeded: model support-assistant version 3 is Approved.",
    }


BASELINES: dict[str, Callable[[], dict[str, Any]]] = {
    rules.TRAINING: _training,
    rules.PROCESSING: _processing,
    rules.TUNING: _tuning,
    rules.MODEL: _model,
    rules.ENDPOINT_CONFIG: _endpoint_config,
    rules.ENDPOINT: _endpoint,
    rules.UPDATE_ENDPOINT: _update_endpoint,
    rules.INVOKE_ENDPOINT: _invoke,
    rules.MODEL_IMPORT: _model_import,
    rules.START_EXECUTION: _execution,
    rules.CREATE_SCHEDULE: _schedule,
    rules.UPDATE_SCHEDULE: _schedule,
    rules.PUBLISH: _publish,
}

# --- mutations --------------------------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def put(*path_and_value: Any) -> Mutation:
    """Set the value at a path of keys (list indexes as ints), creating mappings on the way."""
    *path, value = path_and_value

    def mutate(request: dict[str, Any]) -> None:
        node = request
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value

    return mutate


def drop(*path: Any) -> Mutation:
    def mutate(request: dict[str, Any]) -> None:
        node = request
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(request: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(request)

    return mutate


def cluster(key: str, value: Any) -> Mutation:
    return put("ProcessingResources", "ClusterConfig", key, value)


def tuning_resources(**config: Any) -> Mutation:
    """The tuning job's training jobs on a HyperParameterTuningResourceConfig instead of a ResourceConfig."""
    return both(
        drop("TrainingJobDefinition", "ResourceConfig"),
        put("TrainingJobDefinition", "HyperParameterTuningResourceConfig", config),
    )


def routing(*path_and_value: Any) -> Mutation:
    return put("DeploymentConfig", "BlueGreenUpdatePolicy", "TrafficRoutingConfiguration", *path_and_value)


def _list(count: int, make: Callable[[int], Any]) -> list[Any]:
    return [make(i) for i in range(count)]


def _channels(count: int) -> list[dict[str, Any]]:
    return [_channel(f"c{i}", f"s3://data/c{i}/") for i in range(count)]


def _tag_cases(prefix: str, path: tuple[Any, ...] = ("Tags",)) -> list[tuple[str, Mutation]]:
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    return [
        (f"{prefix}.tags-count", put(*path, many)),
        (f"{prefix}.tag-format", put(*path, [{"Key": "run#id", "Value": "x"}])),
        (f"{prefix}.tag-format", put(*path, [{"Key": "owner", "Value": "a"}, {"Key": "owner", "Value": "b"}])),
        (f"{prefix}.tag-format", put(*path, [{"Key": "k" * 129, "Value": "x"}])),
        (f"{prefix}.tag-aws-prefix", put(*path, [{"Key": "AWS:owner", "Value": "x"}])),
    ]


def _role_cases(prefix: str, path: tuple[str, ...], trusted_elsewhere: str = LAMBDA_ROLE) -> list[tuple[str, Mutation]]:
    return [
        (f"{prefix}.role-arn", put(*path, "trainforge-sagemaker")),
        (f"{prefix}.role-trusted", put(*path, trusted_elsewhere)),
        (f"{prefix}.role-trusted", put(*path, MISSING_ROLE)),
    ]


def _training_job_cases(prefix: str, base: tuple[str, ...]) -> list[tuple[str, Mutation]]:
    """Cases shared by a training job and a tuning job's training job definition (under ``base``)."""
    algorithm, channels, resources = (
        (*base, "AlgorithmSpecification"),
        (*base, "InputDataConfig"),
        (*base, "ResourceConfig"),
    )
    stopping, spot = (*base, "StoppingCondition"), (*base, "EnableManagedSpotTraining")
    hyperparameters = (*base, "HyperParameters" if not base else "StaticHyperParameters")
    return [
        (f"{prefix}.metric-definitions-count", put(*algorithm, "MetricDefinitions", [{"Name": f"m{i}", "Regex": "x"} for i in range(41)])),
        (f"{prefix}.metric-definition-lengths", put(*algorithm, "MetricDefinitions", [{"Name": "loss", "Regex": ""}])),
        (f"{prefix}.metric-definition-lengths", put(*algorithm, "MetricDefinitions", [{"Name": "n" * 256, "Regex": "x"}])),
        (f"{prefix}.hyperparameters-count", put(*hyperparameters, {f"h{i}": "1" for i in range(101)})),
        (f"{prefix}.hyperparameter-strings", put(*hyperparameters, {"epochs": 2})),
        (f"{prefix}.hyperparameter-lengths", put(*hyperparameters, {"prompt": "x" * 2501})),
        (f"{prefix}.hyperparameter-lengths", put(*hyperparameters, {"k" * 257: "1"})),
        (f"{prefix}.channels-count", put(*channels, _channels(21))),
        (f"{prefix}.channels-count", put(*channels, [])),
        (f"{prefix}.channel-name", put(*channels, 0, "ChannelName", "train data")),
        (f"{prefix}.channel-s3-source", put(*channels, 0, "DataSource", "S3DataSource", "S3Uri", "datasets/train.jsonl")),
        (f"{prefix}.channel-s3-source", put(*channels, 0, "DataSource", "S3DataSource", "S3DataType", "Prefix")),
        (f"{prefix}.channel-input-mode", put(*channels, 0, "InputMode", "Stream")),
        (f"{prefix}.channel-compression-file-mode", put(*channels, 0, "CompressionType", "Gzip")),
        (f"{prefix}.volume-kms-key-local-storage", put(*resources, "VolumeKmsKeyId", KEY)),
        (f"{prefix}.volume-kms-key-local-storage", both(put(*resources, "InstanceType", "ml.zz9.xlarge"), put(*resources, "VolumeKmsKeyId", KEY))),
        (f"{prefix}.max-runtime", put(*stopping, "MaxRuntimeInSeconds", 28 * 86400 + 1)),
        (f"{prefix}.max-runtime", put(*stopping, "MaxRuntimeInSeconds", "86400")),
        (f"{prefix}.spot-needs-max-wait", put(*spot, True)),
        (f"{prefix}.max-wait-only-with-spot", put(*stopping, "MaxWaitTimeInSeconds", 172800)),
        (f"{prefix}.max-wait-covers-runtime", both(put(*spot, True), put(*stopping, "MaxWaitTimeInSeconds", 3600))),
        (f"{prefix}.vpc-config", put(*base, "VpcConfig", "Subnets", [f"subnet-{i}" for i in range(17)])),
        (f"{prefix}.vpc-config", put(*base, "VpcConfig", "SecurityGroupIds", [])),
    ]  # fmt: skip


CASES: list[tuple[str, Mutation]] = [
    # sagemaker:CreateTrainingJob
    ("training.job-name", put("TrainingJobName", "support_assistant")),
    ("training.job-name", put("TrainingJobName", "a" * 64)),
    *_role_cases("training", ("RoleArn",)),
    ("training.image", put("AlgorithmSpecification", "AlgorithmName", "trainforge")),
    ("training.image", drop("AlgorithmSpecification", "TrainingImage")),
    ("training.input-mode", put("AlgorithmSpecification", "TrainingInputMode", "Stream")),
    *_training_job_cases("training", ()),
    ("training.output-path", put("OutputDataConfig", "S3OutputPath", "/tmp/output")),
    ("training.checkpoint-uri", put("CheckpointConfig", "S3Uri", "file:///opt/ml/checkpoints")),
    ("training.volume-size-ebs-only", both(put("ResourceConfig", "InstanceType", "ml.m5.xlarge"), drop("ResourceConfig", "VolumeSizeInGB"))),
    ("training.environment", put("Environment", {"1BAD": "x"})),
    ("training.environment", put("Environment", {"VALUE": "x" * 513})),
    ("training.script-mode-source-isolated", put("HyperParameters", {"sagemaker_submit_directory": '"s3://a/sourcedir.tar.gz"'})),
    ("training.script-mode-source-isolated", put("HyperParameters", {"sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"'})),
    ("training.script-mode-source-isolated", put("HyperParameters", {"sagemaker_submit_directory": "s3://a/not-json"})),
    *_tag_cases("training"),
    # sagemaker:CreateProcessingJob
    ("processing.job-name", put("ProcessingJobName", "support-assistant-eval-" + "0" * 41)),
    *_role_cases("processing", ("RoleArn",)),
    ("processing.image", put("AppSpecification", "ImageUri", "x" * 256)),
    ("processing.entrypoint", put("AppSpecification", "ContainerEntrypoint", [])),
    ("processing.arguments", put("AppSpecification", "ContainerArguments", ["x" * 257])),
    ("processing.inputs-count", put("ProcessingInputs", _processing()["ProcessingInputs"] * 11)),
    ("processing.input-source", put("ProcessingInputs", 0, "DatasetDefinition", {"LocalPath": "/opt/ml/processing/input/x"})),
    ("processing.input-source", drop("ProcessingInputs", 0, "S3Input")),
    ("processing.input-local-path", put("ProcessingInputs", 0, "S3Input", "LocalPath", "/data/model")),
    ("processing.input-s3", put("ProcessingInputs", 0, "S3Input", "S3CompressionType", "Gzip")),
    ("processing.input-s3", put("ProcessingInputs", 0, "S3Input", "S3Uri", "artifacts/model/")),
    ("processing.input-s3", put("ProcessingInputs", 0, "S3Input", "S3DataType", "AugmentedManifestFile")),
    ("processing.outputs-count", put("ProcessingOutputConfig", "Outputs", [{"OutputName": f"o{i}"} for i in range(11)])),
    ("processing.output-s3", put("ProcessingOutputConfig", "Outputs", 0, "S3Output", "S3UploadMode", "Whenever")),
    ("processing.output-s3", put("ProcessingOutputConfig", "Outputs", 0, "S3Output", "LocalPath", "output")),
    ("processing.instance-count", cluster("InstanceCount", 0)),
    ("processing.volume-size", drop("ProcessingResources", "ClusterConfig", "VolumeSizeInGB")),
    ("processing.volume-size", cluster("VolumeSizeInGB", 16385)),
    ("processing.volume-size-local-storage", cluster("VolumeSizeInGB", 251)),
    ("processing.volume-size-local-storage", cluster("InstanceType", "ml.p5.4xlarge")),
    ("processing.volume-kms-key-local-storage", cluster("VolumeKmsKeyId", KEY)),
    ("processing.max-runtime", put("StoppingCondition", "MaxRuntimeInSeconds", 777601)),
    ("processing.vpc-config", put("NetworkConfig", "VpcConfig", "SecurityGroupIds", [f"sg-{i}" for i in range(6)])),
    ("processing.environment", put("Environment", {"CONFIG": "x" * 257})),
    *_tag_cases("processing"),
    # sagemaker:CreateHyperParameterTuningJob
    ("tuning.job-name", put("HyperParameterTuningJobName", "support-assistant-3f2a9c1b7d4e-tune")),
    *_role_cases("tuning", ("TrainingJobDefinition", "RoleArn")),
    ("tuning.strategy", put("HyperParameterTuningJobConfig", "Strategy", "Genetic")),
    ("tuning.objective-metric-defined", put("HyperParameterTuningJobConfig", "HyperParameterTuningJobObjective", "MetricName", "tuning:objective")),
    ("tuning.static-not-tuned", put("TrainingJobDefinition", "StaticHyperParameters", "learning_rate", "0.0002")),
    ("tuning.early-stopping-type", put("HyperParameterTuningJobConfig", "TrainingJobEarlyStoppingType", "Median")),
    ("tuning.early-stopping-type", lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto")),
    ("tuning.warm-start", put("WarmStartConfig", {"ParentHyperParameterTuningJobs": [], "WarmStartType": "TransferLearning"})),
    ("tuning.warm-start", put("WarmStartConfig", {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "a"}], "WarmStartType": "Transfer"})),
    ("tuning.resource-limits", put("HyperParameterTuningJobConfig", "ResourceLimits", "MaxParallelTrainingJobs", 0)),
    ("tuning.resource-limits", put("HyperParameterTuningJobConfig", "ResourceLimits", "MaxRuntimeInSeconds", 60)),
    ("tuning.resource-limits", drop("HyperParameterTuningJobConfig", "ResourceLimits")),
    ("tuning.resource-limits", drop("HyperParameterTuningJobConfig", "ResourceLimits", "MaxNumberOfTrainingJobs")),
    ("tuning.algorithm-specification", put("TrainingJobDefinition", "AlgorithmSpecification", "ContainerEntrypoint", ["trainforge-train"])),
    ("tuning.algorithm-specification", put("TrainingJobDefinition", "AlgorithmSpecification", "EnableSageMakerMetricsTimeSeries", True)),
    ("tuning.algorithm-specification", put("TrainingJobDefinition", "AlgorithmSpecification", "AlgorithmName", "trainforge")),
    ("tuning.algorithm-specification", drop("TrainingJobDefinition", "AlgorithmSpecification", "TrainingInputMode")),
    ("tuning.continuous-range-scaling", put("HyperParameterTuningJobConfig", "ParameterRanges", "ContinuousParameterRanges", 0, "MinValue", "0")),
    ("tuning.continuous-range-scaling", put("HyperParameterTuningJobConfig", "ParameterRanges", "ContinuousParameterRanges", [{"Name": "lora_dropout", "MinValue": "0", "MaxValue": "1.5", "ScalingType": "ReverseLogarithmic"}])),
    ("tuning.integer-range-scaling", put("HyperParameterTuningJobConfig", "ParameterRanges", "IntegerParameterRanges", [{"Name": "lora_rank", "MinValue": "0", "MaxValue": "64", "ScalingType": "Logarithmic"}])),
    ("tuning.environment", put("TrainingJobDefinition", "Environment", {f"VAR_{i}": "1" for i in range(49)})),
    ("tuning.parameter-ranges-count", put("HyperParameterTuningJobConfig", "ParameterRanges", "IntegerParameterRanges", _list(30, lambda i: {"Name": f"p{i}", "MinValue": "1", "MaxValue": "2"}))),
    *_training_job_cases("tuning", ("TrainingJobDefinition",)),
    ("tuning.resource-volume-kms-key-local-storage", tuning_resources(InstanceType="ml.g5.2xlarge", InstanceCount=1, VolumeKmsKeyId=KEY)),
    ("tuning.resource-volume-kms-key-local-storage", tuning_resources(InstanceConfigs=[{"InstanceType": "ml.m5.xlarge"}, {"InstanceType": "ml.g6.xlarge"}], VolumeKmsKeyId=KEY)),
    ("tuning.volume-size-local-storage", tuning_resources(InstanceType="ml.g5.2xlarge", InstanceCount=1, VolumeSizeInGB=500)),
    *_tag_cases("tuning"),
    # sagemaker:CreateModel
    ("model.name", put("ModelName", "support-assistant-")),
    *_role_cases("model", ("ExecutionRoleArn",)),
    ("model.container", both(drop("PrimaryContainer"), put("Containers", [{"Image": IMAGE}] * 16))),
    ("model.container", put("PrimaryContainer", "Image", "registry/image with space")),
    ("model.data-source-prefix-uri", put("PrimaryContainer", "ModelDataSource", "S3DataSource", "S3Uri", MODEL_PREFIX.rstrip("/"))),
    ("model.data-source-prefix-compression", put("PrimaryContainer", "ModelDataSource", "S3DataSource", "CompressionType", "Gzip")),
    ("model.data-source-object-names", put("PrimaryContainer", "ModelDataSource", "S3DataSource", "S3Uri", FOLDER_MARKER_PREFIX)),
    ("model.data-source-object-names", put("PrimaryContainer", "ModelDataSource", "S3DataSource", "S3Uri", CLASH_PREFIX)),
    ("model.data-url-archive", both(drop("PrimaryContainer", "ModelDataSource"), put("PrimaryContainer", "ModelDataUrl", MODEL_PREFIX))),
    ("model.environment", put("PrimaryContainer", "Environment", {f"V{i}": "1" for i in range(101)})),
    ("model.environment", put("PrimaryContainer", "Environment", {f"V{i}": "x" * 1000 for i in range(40)})),
    ("model.environment", put("PrimaryContainer", "Environment", {"PROMPT": "x" * 1025})),
    ("model.vpc-config", put("VpcConfig", "Subnets", [])),
    *_tag_cases("model"),
    # sagemaker:CreateEndpointConfig
    ("endpoint-config.name", put("EndpointConfigName", "support_assistant_v3")),
    ("endpoint-config.variants-count", put("ProductionVariants", [])),
    ("endpoint-config.variants-count", put("ProductionVariants", [_variant(f"v{i}") for i in range(11)])),
    ("endpoint-config.variant-names", put("ProductionVariants", 0, "VariantName", "All Traffic")),
    ("endpoint-config.variant-names", put("ProductionVariants", 0, "ModelName", "model_v3")),
    ("endpoint-config.variant-capacity", put("ProductionVariants", 0, "InitialInstanceCount", 0)),
    ("endpoint-config.variant-capacity", put("ProductionVariants", 0, "InitialVariantWeight", -1.0)),
    ("endpoint-config.shadow-variants", both(put("ProductionVariants", [_variant("a"), _variant("b")]), put("ShadowProductionVariants", [_variant("s")]))),
    *_role_cases("endpoint-config", ("ExecutionRoleArn",)),
    ("endpoint-config.vpc-config", put("VpcConfig", {"Subnets": ["subnet-0a"]})),
    ("endpoint-config.data-capture-sampling", put("DataCaptureConfig", "InitialSamplingPercentage", 101)),
    ("endpoint-config.data-capture-options", put("DataCaptureConfig", "CaptureOptions", [])),
    ("endpoint-config.data-capture-options", put("DataCaptureConfig", "CaptureOptions", [{"CaptureMode": "Input"}] * 33)),
    ("endpoint-config.data-capture-destination", put("DataCaptureConfig", "DestinationS3Uri", "s3://artifacts/" + "c" * 498)),
    ("endpoint-config.data-capture-destination", put("DataCaptureConfig", "DestinationS3Uri", "artifacts/capture")),
    *_tag_cases("endpoint-config"),
    # sagemaker:CreateEndpoint and UpdateEndpoint
    ("endpoint.name", put("EndpointName", "support.assistant")),
    ("endpoint.config-name", drop("EndpointConfigName")),
    ("endpoint.deployment-config", put("DeploymentConfig", _blue_green() | {"RollingUpdatePolicy": {}})),
    *_tag_cases("endpoint"),
    ("endpoint-update.name", put("EndpointName", "-support-assistant")),
    ("endpoint-update.config-name", put("EndpointConfigName", "c" * 64)),
    ("endpoint-update.deployment-config", routing("CanarySize", "Value", 60)),
    ("endpoint-update.deployment-config", routing({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}, "WaitIntervalInSeconds": 300})),
    ("endpoint-update.deployment-config", routing({"Type": "CANARY", "WaitIntervalInSeconds": 300})),
    ("endpoint-update.deployment-config", routing("WaitIntervalInSeconds", 3601)),
    ("endpoint-update.deployment-config", put("DeploymentConfig", "BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds", 600)),
    ("endpoint-update.deployment-config", put("DeploymentConfig", "BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds", 28801)),
    ("endpoint-update.deployment-config", put("DeploymentConfig", "AutoRollbackConfiguration", "Alarms", _list(11, lambda i: {"AlarmName": f"a{i}"}))),
    ("endpoint-update.traffic-step-size", put("EndpointConfigName", "support-assistant-v4-one-instance")),
    ("endpoint-update.traffic-step-size", routing("CanarySize", {"Type": "INSTANCE_COUNT", "Value": 2})),
    ("endpoint-update.traffic-step-size", both(routing({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 300}), put("EndpointConfigName", "support-assistant-v4-one-instance"))),
    ("endpoint-update.blue-green-variant-names", put("EndpointConfigName", "support-assistant-v4-renamed")),
    # sagemaker:InvokeEndpoint
    ("invoke.endpoint-name", put("EndpointName", "support_assistant")),
    ("invoke.payload-size", put("Body", b"x" * (6 * 2**20 + 1))),
    ("invoke.payload-size", put("Body", "é" * (3 * 2**20 + 1))),
    # bedrock:CreateModelImportJob
    ("bedrock-import.required", drop("roleArn")),
    ("bedrock-import.required", drop("modelDataSource")),
    ("bedrock-import.job-name", put("jobName", "support assistant")),
    ("bedrock-import.model-name", put("importedModelName", "support--assistant-v3")),
    ("bedrock-import.model-name", put("importedModelName", "-support-assistant")),
    ("bedrock-import.role-arn", put("roleArn", f"arn:aws:iam::{ACCOUNT}:user/someone")),
    ("bedrock-import.role-trusted", put("roleArn", SAGEMAKER_ROLE)),
    ("bedrock-import.role-trusted", put("roleArn", MISSING_ROLE)),
    ("bedrock-import.s3-uri", put("modelDataSource", "s3DataSource", "s3Uri", "s3://Artifacts/model/")),
    ("bedrock-import.s3-uri", put("modelDataSource", "s3DataSource", "s3Uri", "s3://artifacts/run=1/model/")),
    ("bedrock-import.model-files", put("modelDataSource", "s3DataSource", "s3Uri", EMPTY_PREFIX)),
    ("bedrock-import.vpc-config", put("vpcConfig", "subnetIds", [])),
    ("bedrock-import.kms-key", put("importedModelKmsKeyId", "my key")),
    # states:StartExecution
    ("execution.name", put("name", "support-assistant:3f2a9c1b7d4e")),
    ("execution.name", put("name", "run 1")),
    ("execution.name", put("name", "r" * 81)),
    ("execution.input-json", put("input", "{run: 1}")),
    ("execution.input-size", put("input", json.dumps("x" * 262144))),
    # sns:Publish
    ("publish.target", put("PhoneNumber", "+15555550100")),
    ("publish.target", drop("TopicArn")),
    ("publish.subject", put("Subject", "S" * 100)),
    ("publish.subject", put("Subject", "TrainForge run\nfailed")),
    ("publish.message-size", put("Message", "")),
    ("publish.message-size", put("Message", "x" * (256 * 1024 + 1))),
    ("publish.message-size", both(put("Message", "x" * (256 * 1024 - 10)), put("MessageAttributes", {"run": {"DataType": "String", "StringValue": "r" * 20}}))),
    ("publish.message-structure", both(put("MessageStructure", "json"), put("Message", "plain text"))),
    ("publish.message-structure", both(put("MessageStructure", "json"), put("Message", '{"email": "x"}'))),
]  # fmt: skip


def _schedule_cases(prefix: str) -> list[tuple[str, Mutation]]:
    return [
        (f"{prefix}.name", put("Name", "support assistant")),
        (f"{prefix}.name", drop("Name")),
        (f"{prefix}.group-name", put("GroupName", "trainforge/retrain")),
        (f"{prefix}.expression", put("ScheduleExpression", "rate(0 days)")),
        (f"{prefix}.expression", put("ScheduleExpression", "rate(1 week)")),
        (f"{prefix}.expression", put("ScheduleExpression", "every 7 days")),
        (f"{prefix}.expression", put("ScheduleExpression", "at(2027-01-01 00:00)")),
        (f"{prefix}.cron-fields", put("ScheduleExpression", "cron(0 3 * * 1)")),
        (f"{prefix}.cron-fields", put("ScheduleExpression", "cron(0 3 * * MON *)")),
        (f"{prefix}.flexible-time-window", drop("FlexibleTimeWindow")),
        (f"{prefix}.flexible-time-window", put("FlexibleTimeWindow", "Mode", "ON")),
        (f"{prefix}.flexible-time-window", put("FlexibleTimeWindow", {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 1441})),
        (f"{prefix}.target", drop("Target", "RoleArn")),
        (f"{prefix}.role-arn", put("Target", "RoleArn", f"arn:aws:iam::{ACCOUNT}:user/scheduler")),
        (f"{prefix}.role-trusted", put("Target", "RoleArn", LAMBDA_ROLE)),
        (f"{prefix}.target-input", put("Target", "Input", "job_name=support-assistant")),
        (f"{prefix}.target-input", put("Target", "Input", json.dumps("x" * 262144))),
    ]  # fmt: skip


CASES += _schedule_cases("schedule") + _schedule_cases("schedule-update")

#: requests that take a conditional rule's other branch: each must obey the whole table
OBEYING: list[tuple[str, Mutation]] = [
    ("training key on an EBS-only type", both(put("ResourceConfig", "InstanceType", "ml.m5.xlarge"), put("ResourceConfig", "VolumeKmsKeyId", KEY))),
    ("training key on p3 (EBS only)", both(put("ResourceConfig", "InstanceType", "ml.p3.2xlarge"), put("ResourceConfig", "VolumeKmsKeyId", KEY))),
    ("trn1 job without a key", put("ResourceConfig", "InstanceType", "ml.trn1.32xlarge")),
    ("spot with a wait equal to the runtime", both(put("EnableManagedSpotTraining", True), put("StoppingCondition", "MaxWaitTimeInSeconds", 86400))),
    ("spot with the longest runtime", both(put("EnableManagedSpotTraining", True), put("StoppingCondition", {"MaxRuntimeInSeconds": 2419200, "MaxWaitTimeInSeconds": 2592000}))),
    ("channel compressed in Pipe mode", both(put("InputDataConfig", 0, "InputMode", "Pipe"), put("InputDataConfig", 0, "CompressionType", "Gzip"))),
    ("100 string hyperparameters", put("HyperParameters", {f"h{i}": "x" * 2500 for i in range(100)})),
]  # fmt: skip
OBEYING_PROCESSING: list[tuple[str, Mutation]] = [
    ("processing key on an EBS-only type", both(cluster("InstanceType", "ml.m5.xlarge"), cluster("VolumeKmsKeyId", KEY))),
    ("volume exactly the local storage", cluster("VolumeSizeInGB", 250)),
    ("an EBS volume beyond any local storage", both(cluster("InstanceType", "ml.c5.2xlarge"), cluster("VolumeSizeInGB", 16384))),
]  # fmt: skip
OBEYING_OTHERS: list[tuple[str, str, Mutation]] = [
    (rules.CREATE_SCHEDULE, "cron with '?' day-of-month", put("ScheduleExpression", "cron(0 3 ? * MON *)")),
    (rules.CREATE_SCHEDULE, "one-time schedule", put("ScheduleExpression", "at(2027-01-01T00:00:00)")),
    (rules.CREATE_SCHEDULE, "rate of one hour", put("ScheduleExpression", "rate(1 hour)")),
    (rules.CREATE_SCHEDULE, "non-JSON input to an SQS target", both(put("Target", "Arn", f"arn:aws:sqs:us-east-1:{ACCOUNT}:q"), put("Target", "Input", "hi"))),
    (rules.UPDATE_ENDPOINT, "all at once", routing({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0})),
    (rules.UPDATE_ENDPOINT, "no deployment config", drop("DeploymentConfig")),
    (rules.UPDATE_ENDPOINT, "a canary of one instance in two", routing("CanarySize", {"Type": "INSTANCE_COUNT", "Value": 1})),
    (rules.UPDATE_ENDPOINT, "a canary of 50% of two instances", routing("CanarySize", "Value", 50)),
    (rules.UPDATE_ENDPOINT, "new variant names without blue/green", both(put("EndpointConfigName", "support-assistant-v4-renamed"), drop("DeploymentConfig"))),
    (rules.ENDPOINT_CONFIG, "no data capture", drop("DataCaptureConfig")),
    (rules.ENDPOINT_CONFIG, "key on an EBS-only variant", put("ProductionVariants", 0, "InstanceType", "ml.m5.xlarge")),
    (rules.MODEL, "tar.gz model data", both(drop("PrimaryContainer", "ModelDataSource"), put("PrimaryContainer", "ModelDataUrl", "s3://a/m.tar.gz"))),
    (rules.MODEL, "no execution role", drop("ExecutionRoleArn")),
    (rules.INVOKE_ENDPOINT, "a 6 MB payload", put("Body", b"x" * 6 * 2**20)),
    (rules.START_EXECUTION, "no name", drop("name")),
    (rules.START_EXECUTION, "unicode name", put("name", "trainieren-über-nacht")),
    (rules.PUBLISH, "json message structure", both(put("MessageStructure", "json"), put("Message", '{"default": "run done"}'))),
    (rules.PUBLISH, "99-character subject", put("Subject", "S" * 99)),
    (rules.MODEL_IMPORT, "no VPC", drop("vpcConfig")),
]  # fmt: skip

_API_OF = {rule.id: rule.api for rule in RULES}


def _applied(api: str, mutation: Mutation) -> dict[str, Any]:
    request = BASELINES[api]()
    mutation(request)
    return request


def _case_id(case: tuple[str, Mutation]) -> str:
    return case[0]


# --- the table's structure --------------------------------------------------------------------------------------------


def test_every_rule_has_a_stable_unique_id_a_docs_url_and_a_sentence() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids)), "duplicate rule ids"
    for rule in RULES:
        assert isinstance(rule, Rule)
        assert re.fullmatch(r"[a-z][a-z-]*\.[a-z0-9][a-z0-9-]*", rule.id), rule.id
        assert rule.source.startswith("https://docs.aws.amazon.com/"), (rule.id, rule.source)
        assert rule.rule.endswith(".") and "\n" not in rule.rule, (rule.id, rule.rule)
        assert rule.api in BASELINES, (rule.id, rule.api)
    assert {rule.api for rule in RULES} == set(BASELINES), "an API the pipeline calls has no rules"


def test_check_dispatches_on_the_api_and_formats_id_message_source() -> None:
    request = _training()
    request["TrainingJobName"] = "bad_name"
    (violation,) = check(rules.TRAINING, request, CTX)
    rule = next(r for r in RULES if r.id == "training.job-name")
    assert violation.startswith("training.job-name: TrainingJobName 'bad_name' ")
    assert violation.endswith(f" ({rule.source})")
    assert not any(v.startswith("training.") for v in check(rules.PROCESSING, request, CTX))
    assert check("sagemaker:DescribeTrainingJob", request, CTX) == []  # no rules, nothing to break


def test_every_rule_is_broken_by_a_case() -> None:
    assert {rule.id for rule in RULES} == {rule_id for rule_id, _ in CASES}


# --- each rule: obeyed by the baseline, reported for its breaking case ------------------------------------------------


@pytest.mark.parametrize("api", sorted(BASELINES))
def test_the_pipelines_requests_obey_every_rule(api: str) -> None:
    assert check(api, BASELINES[api](), CTX) == []


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_breaking_request_is_reported_under_the_rules_id(case: tuple[str, Mutation]) -> None:
    rule_id, mutation = case
    violations = check(_API_OF[rule_id], _applied(_API_OF[rule_id], mutation), CTX)
    assert any(v.startswith(f"{rule_id}: ") for v in violations), violations


@pytest.mark.parametrize("case", OBEYING, ids=_case_id)
def test_a_training_job_in_a_conditional_rules_other_branch_passes(case: tuple[str, Mutation]) -> None:
    assert check(rules.TRAINING, _applied(rules.TRAINING, case[1]), CTX) == []


@pytest.mark.parametrize("case", OBEYING_PROCESSING, ids=_case_id)
def test_a_processing_job_in_a_conditional_rules_other_branch_passes(case: tuple[str, Mutation]) -> None:
    assert check(rules.PROCESSING, _applied(rules.PROCESSING, case[1]), CTX) == []


@pytest.mark.parametrize("api, label, mutation", OBEYING_OTHERS, ids=[label for _, label, _ in OBEYING_OTHERS])
def test_other_requests_in_a_conditional_rules_other_branch_pass(api: str, label: str, mutation: Mutation) -> None:
    assert check(api, _applied(api, mutation), CTX) == []


def test_a_volume_key_on_local_storage_names_the_type_and_field() -> None:
    request = _training()
    request["ResourceConfig"]["VolumeKmsKeyId"] = KEY
    (violation,) = check(rules.TRAINING, request, CTX)
    assert "ResourceConfig.VolumeKmsKeyId" in violation and "ml.g5.2xlarge" in violation


def test_an_instance_family_the_twin_does_not_know_is_reported_not_guessed() -> None:
    request = _training()
    request["ResourceConfig"] |= {"InstanceType": "ml.zz9.xlarge", "VolumeKmsKeyId": KEY}
    assert any("does not say whether this type has instance storage" in v for v in check(rules.TRAINING, request, CTX))


# --- the facts agree with AWS's published service model ---------------------------------------------------------------

#: (rule id, botocore service, operation, member path): the rule's length limit is the model's max
_MODEL_LIMITS = [
    ("training.job-name", "sagemaker", "CreateTrainingJob", ("TrainingJobName",)),
    ("processing.job-name", "sagemaker", "CreateProcessingJob", ("ProcessingJobName",)),
    ("tuning.job-name", "sagemaker", "CreateHyperParameterTuningJob", ("HyperParameterTuningJobName",)),
    ("model.name", "sagemaker", "CreateModel", ("ModelName",)),
    ("endpoint-config.name", "sagemaker", "CreateEndpointConfig", ("EndpointConfigName",)),
    ("endpoint.name", "sagemaker", "CreateEndpoint", ("EndpointName",)),
    ("endpoint-update.name", "sagemaker", "UpdateEndpoint", ("EndpointName",)),
    ("bedrock-import.job-name", "bedrock", "CreateModelImportJob", ("jobName",)),
    ("bedrock-import.model-name", "bedrock", "CreateModelImportJob", ("importedModelName",)),
    ("schedule.name", "scheduler", "CreateSchedule", ("Name",)),
    ("execution.name", "stepfunctions", "StartExecution", ("name",)),
]


@functools.cache
def _service_model(service: str) -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model(service)


def _model_max(service: str, operation: str, path: tuple[str, ...]) -> int:
    shape = _service_model(service).operation_model(operation).input_shape
    for key in path:
        shape = shape.members[key]
    return int(shape.metadata["max"])


@pytest.mark.parametrize("rule_id, service, operation, path", _MODEL_LIMITS, ids=[row[0] for row in _MODEL_LIMITS])
def test_name_limits_match_the_service_model(rule_id: str, service: str, operation: str, path: tuple[str, ...]) -> None:
    longest = _model_max(service, operation, path)
    api = _API_OF[rule_id]
    for length, reported in ((longest, False), (longest + 1, True)):
        request = _applied(api, put(*path, "a" * length))
        assert any(v.startswith(f"{rule_id}: ") for v in check(api, request, CTX)) is reported, (rule_id, length)


def test_the_hyperparameter_and_payload_limits_match_the_service_model() -> None:
    sagemaker = _service_model("sagemaker")
    hyperparameters = sagemaker.operation_model("CreateTrainingJob").input_shape.members["HyperParameters"]
    assert hyperparameters.metadata["max"] == 100
    assert hyperparameters.value.metadata["max"] == 2500 and hyperparameters.key.metadata["max"] == 256
    runtime = _service_model("sagemaker-runtime")
    assert runtime.operation_model("InvokeEndpoint").input_shape.members["Body"].metadata["max"] == 6 * 2**20
    processing = sagemaker.operation_model("CreateProcessingJob").input_shape.members["StoppingCondition"]
    assert processing.members["MaxRuntimeInSeconds"].metadata["max"] == 777600
    tuned = sagemaker.operation_model("CreateHyperParameterTuningJob").input_shape.members["TrainingJobDefinition"]
    environment = tuned.members["Environment"]  # tuning.environment's limits
    limits = environment.metadata["max"], environment.key.metadata["max"], environment.value.metadata["max"]
    assert limits == (48, 512, 512)
    assert set(tuned.members["AlgorithmSpecification"].members) == rules._TUNING_ALGORITHM_FIELDS
    capture = sagemaker.operation_model("CreateEndpointConfig").input_shape.members["DataCaptureConfig"]
    assert capture.members["DestinationS3Uri"].metadata["max"] == 512
    options = capture.members["CaptureOptions"].metadata
    assert (options["min"], options["max"]) == (1, 32)
    assert capture.members["InitialSamplingPercentage"].metadata["max"] == 100


def test_every_sagemaker_instance_family_is_classified_by_storage() -> None:
    """A family SageMaker adds shows up here first, instead of as an 'unknown' verdict in a twin run."""
    sagemaker = _service_model("sagemaker")
    families = {
        name.split(".")[1]
        for shape in ("TrainingInstanceType", "ProcessingInstanceType", "ProductionVariantInstanceType")
        for name in sagemaker.shape_for(shape).enum
    }
    unknown = families - rules.LOCAL_STORAGE_FAMILIES - rules.EBS_ONLY_FAMILIES
    assert unknown <= {"g7", "g7e", "p6-b300"}, sorted(unknown)
    assert not rules.LOCAL_STORAGE_FAMILIES & rules.EBS_ONLY_FAMILIES
    assert {t.split(".")[1] for t in rules.LOCAL_STORAGE_GB} <= rules.LOCAL_STORAGE_FAMILIES
