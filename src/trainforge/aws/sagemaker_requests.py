"""Every SageMaker and Bedrock request the pipeline sends, built in one place.

The Prepare steps return these bodies and the state machine's Task states pass them to SageMaker whole;
the deploy step sends its own through boto3; the tests hold each to AWS's documented rules on the
SageMaker twin. What depends on the instance family (the image, the device the entry point must find,
processes per node, whether a volume KMS key may be sent, how large a volume may be) is read from
``trainforge.instances``, the one table of hardware facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from trainforge.contracts import EvaluationRequest, TrainingRequest
from trainforge.errors import SpecInvalid
from trainforge.instances import InstanceType, instance_type
from trainforge.settings import Settings

GIB = 2**30

#: CloudWatch metric name -> the field of the JSON lines the training loop prints (``{"loss": 1.23, ...}``);
#: SageMaker matches each regex on every log line of the container
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html#define-train-metrics)
METRICS = {
    "train:loss": "loss",
    "validation:loss": "eval_loss",
    # where the run selects by exact match (a tuning trial with tuning.objective: exact_match)
    "validation:exact_match": "eval_exact_match",
    "train:tokens_per_s": "tokens_per_s",
}
#: a step record's loss follows its step (and total steps), as the loop and the custom examples print them, so
#: a "loss" key elsewhere (the memory event's estimate parts) is not read as a training loss
_STEP_PREFIX = r'"step": [0-9]+, (?:"total_steps": [0-9]+, )?'
METRIC_DEFINITIONS = [
    {"Name": name, "Regex": (_STEP_PREFIX if field == "loss" else "") + rf'"{field}": ([0-9.eE+-]+)'}
    for name, field in METRICS.items()
]

#: the entry point SageMaker processing jobs run in the training image (pyproject's console script)
EVALUATION_ENTRYPOINT = ["trainforge-evaluate"]
PROCESSING_ROOT = "/opt/ml/processing"

#: Hugging Face architectures vLLM serves as text generation models (vLLM's supported-models list), which
#: LMI therefore serves with continuous batching and tensor parallelism
VLLM_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "MixtralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Phi3ForCausalLM",
        "GPTNeoXForCausalLM",
        "Starcoder2ForCausalLM",
    }
)
#: AWS's Large Model Inference container with vLLM (djl-serving release notes, LMI V20)
LMI_TAG = "djl-inference:0.36.0-lmi20.0.0-cu128-v1.0"
#: the AWS Deep Learning Containers registry of each region (DLC "available images"); 763104351884 elsewhere
DLC_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
}


@dataclass(frozen=True)
class AwsResources:
    """What the stack made for the jobs: the role they run as, the key, the network."""

    region: str
    role_arn: str
    kms_key_arn: str
    subnets: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    bedrock_role_arn: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> AwsResources:
        return cls(
            region=region,
            role_arn=settings.sagemaker_role_arn,
            kms_key_arn=settings.kms_key_arn,
            subnets=tuple(s for s in settings.subnet_ids.split(",") if s),
            security_group_ids=tuple(s for s in settings.security_group_ids.split(",") if s),
            bedrock_role_arn=settings.bedrock_role_arn,
        )

    def vpc_config(self) -> dict[str, list[str]]:
        return {"SecurityGroupIds": list(self.security_group_ids), "Subnets": list(self.subnets)}


@dataclass(frozen=True)
class Placement:
    """How a job runs on an instance family: the image, the device its entry point must find (it fails
    rather than fall back to the CPU), and the environment that sizes its processes."""

    image: str
    device: Literal["cuda", "neuron", "cpu"]
    environment: dict[str, str]


def placement(instance: InstanceType, image_uri: str, neuron_image_uri: str) -> Placement:
    """``image_uri`` is the CUDA image (it also runs on CPU types); ``neuron_image_uri`` the Trainium one."""
    environment = {"TRAINFORGE_NPROC_PER_NODE": str(instance.processes_per_node)}
    if instance.accelerator != "neuron":
        return Placement(image_uri, instance.accelerator, environment)
    if not neuron_image_uri:
        raise SpecInvalid(
            f"{instance.name} is a Trainium type, but this installation has no Trainium image "
            "(the stack was deployed with context neuron_image=false): pick a GPU type or redeploy with it"
        )
    # Neuron's compiler tunes for transformer graphs with this flag (AWS Neuron docs, neuronx-cc options)
    return Placement(neuron_image_uri, "neuron", environment | {"NEURON_CC_FLAGS": "--model-type=transformer"})


def volume_size_gb(instance: InstanceType, model_bytes: int) -> int:
    """Room for the base model, the trained model and checkpoints with optimizer state (about six copies of
    the weights for a full fine-tune) plus data; never more than a type's local NVMe, which SageMaker
    mounts instead of EBS and refuses to exceed."""
    wanted = math.ceil(6 * model_bytes / GIB) + 30
    return min(wanted, instance.nvme_gib) if instance.local_nvme else wanted


def _storage(instance: InstanceType, size_gb: int, aws: AwsResources) -> dict[str, Any]:
    """Instance-storage fields: SageMaker refuses a volume KMS key for types with local NVMe storage, which
    a hardware module on the instance encrypts (ResourceConfig.VolumeKmsKeyId in the CreateTrainingJob
    API reference)."""
    storage: dict[str, Any] = {"InstanceType": instance.name, "VolumeSizeInGB": size_gb}
    if not instance.local_nvme:
        storage["VolumeKmsKeyId"] = aws.kms_key_arn
    return storage


def _tags(run_id: str, job_name: str) -> list[dict[str, str]]:
    return [{"Key": "trainforge:run-id", "Value": run_id}, {"Key": "trainforge:job", "Value": job_name}]


def create_training_job(training: TrainingRequest, aws: AwsResources) -> dict[str, Any]:
    """The CreateTrainingJob request: isolated, in the VPC, encrypted, bounded by the spec's runtime."""
    instance = instance_type(training.instance_type)
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": training.max_runtime_seconds}
    if training.spot:
        assert training.max_wait_seconds is not None, "a spot request carries its MaxWait"
        stopping["MaxWaitTimeInSeconds"] = training.max_wait_seconds
    return {
        "TrainingJobName": training.training_job_name,
        "AlgorithmSpecification": {
            "TrainingImage": training.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": aws.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": name,
                "InputMode": "File",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, uri in training.channels.items()
        ],
        "HyperParameters": training.hyperparameters,
        "Environment": training.environment,
        "OutputDataConfig": {
            "S3OutputPath": training.output_uri,
            "KmsKeyId": aws.kms_key_arn,
            "CompressionType": "NONE",
        },
        "ResourceConfig": {
            "InstanceCount": training.instance_count,
            **_storage(instance, training.volume_size_gb, aws),
        },
        "StoppingCondition": stopping,
        "CheckpointConfig": {"S3Uri": training.checkpoint_uri},
        "VpcConfig": aws.vpc_config(),
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": training.spot,
        "Tags": _tags(training.run_id, training.job_name),
    }


def create_processing_job(evaluation: EvaluationRequest, aws: AwsResources) -> dict[str, Any]:
    """The CreateProcessingJob request that runs ``trainforge-evaluate`` on the tuned and base models."""
    instance = instance_type(evaluation.instance_type)
    return {
        "ProcessingJobName": evaluation.processing_job_name,
        "RoleArn": aws.role_arn,
        "AppSpecification": {"ImageUri": evaluation.image, "ContainerEntrypoint": EVALUATION_ENTRYPOINT},
        "ProcessingInputs": [
            {
                "InputName": name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": f"{PROCESSING_ROOT}/input/{name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
            for name, uri in evaluation.inputs.items()
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": evaluation.output_uri,
                        "LocalPath": f"{PROCESSING_ROOT}/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": aws.kms_key_arn,
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, **_storage(instance, evaluation.volume_size_gb, aws)}
        },
        "NetworkConfig": {
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
            "VpcConfig": aws.vpc_config(),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": evaluation.max_runtime_seconds},
        "Environment": evaluation.environment,
        "Tags": _tags(evaluation.run_id, evaluation.processing_job_name),
    }


#: the continuous evaluation job (``trainforge.evaluation.continuous``) in the same image
CONTINUOUS_EVALUATION_ENTRYPOINT = ["python3", "-m", "trainforge.evaluation.continuous"]


def create_continuous_evaluation_job(evaluation: EvaluationRequest, aws: AwsResources) -> dict[str, Any]:
    """The CreateProcessingJob request that re-scores an endpoint's versions: the evaluation job's request
    (isolated, in the VPC, encrypted, bounded) running the continuous evaluation module; ``run_id`` names
    the endpoint whose versions it scores."""
    request = create_processing_job(evaluation, aws)
    request["AppSpecification"]["ContainerEntrypoint"] = CONTINUOUS_EVALUATION_ENTRYPOINT
    request["Tags"] = [
        {"Key": "trainforge:endpoint", "Value": evaluation.run_id},
        {"Key": "trainforge:kind", "Value": "continuous-evaluation"},
    ]
    return request


# --- serving ---------------------------------------------------------------------------------------------


def dlc_image(region: str, repository_and_tag: str) -> str:
    """An AWS Deep Learning Container in ``region``'s DLC registry (``DLC_ACCOUNTS``)."""
    account = DLC_ACCOUNTS.get(region, "763104351884")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}/{repository_and_tag}"


def lmi_image(region: str) -> str:
    return dlc_image(region, LMI_TAG)


def serving_engine(requested: str, architectures: list[str]) -> Literal["lmi", "trainforge"]:
    """``auto``: LMI (vLLM) for the architectures vLLM serves, this project's server for the rest."""
    if requested == "lmi" and not VLLM_ARCHITECTURES.intersection(architectures):
        raise SpecInvalid(
            f"deploy.engine lmi cannot serve {architectures}: vLLM serves {sorted(VLLM_ARCHITECTURES)}; "
            "use deploy.engine: trainforge"
        )
    if requested in ("lmi", "trainforge"):
        return requested  # type: ignore[return-value]
    return "lmi" if VLLM_ARCHITECTURES.intersection(architectures) else "trainforge"


def serving_container(
    model_uri: str,
    engine: Literal["lmi", "trainforge"],
    *,
    name: str,
    max_model_len: int,
    image_uri: str,
    region: str,
    native_bf16: bool = True,
) -> dict[str, Any]:
    """The model's container: the uncompressed model folder mounted at /opt/ml/model by SageMaker (so the
    container needs no network), served by LMI or by this project's image (``IMAGE serve``).
    ``native_bf16``: whether the endpoint's GPU runs bf16 in hardware (``InstanceType.native_bf16``)."""
    source = {
        "S3DataSource": {"S3Uri": model_uri.rstrip("/") + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    if engine == "lmi":
        # LMI loads /opt/ml/model when no HF_MODEL_ID is set; max model length bounds its KV cache (LMI
        # configurations: TENSOR_PARALLEL_DEGREE, OPTION_MAX_MODEL_LEN)
        # Evaluation scores a GPU's model in bf16 and writes the parity reference so; LMI's dtype "auto" would
        # serve the float32 export in fp16 and fail parity. A GPU before Ampere has no bf16 in vLLM: fp16
        # there, whose answers parity then judges (LMI's option.dtype: fp16, bf16, fp32, auto;
        # https://docs.djl.ai/docs/serving/serving/docs/lmi/user_guides/vllm_user_guide.html)
        environment = {
            "TENSOR_PARALLEL_DEGREE": "max",
            "OPTION_MAX_MODEL_LEN": str(max_model_len),
            "OPTION_DTYPE": "bf16" if native_bf16 else "fp16",
        }
        return {"Image": lmi_image(region), "ModelDataSource": source, "Environment": environment}
    environment = {"TRAINFORGE_MODEL_NAME": name, "HF_HUB_OFFLINE": "1"}
    return {"Image": image_uri, "ModelDataSource": source, "Environment": environment}


def create_model(model_name: str, container: dict[str, Any], aws: AwsResources) -> dict[str, Any]:
    return {
        "ModelName": model_name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": aws.role_arn,
        "EnableNetworkIsolation": True,
        "VpcConfig": aws.vpc_config(),
    }


@dataclass(frozen=True)
class HostedVariant:
    """One variant of an endpoint configuration: the model it runs and its share of requests (a shadow
    variant's weight, relative to the production variant's, is the share of requests copied to it)."""

    name: str
    model_name: str
    weight: int
    shadow: bool = False


def data_capture_config(destination_uri: str, percent: int, aws: AwsResources) -> dict[str, Any]:
    """Requests and answers, as JSON text (not base64), to ``destination_uri/ENDPOINT/VARIANT/yyyy/mm/dd/hh/``
    under the stack's key (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html)."""
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": destination_uri,
        "KmsKeyId": aws.kms_key_arn,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def create_endpoint_config(
    config_name: str,
    variants: list[HostedVariant],
    instance: InstanceType,
    instance_count: int,
    aws: AwsResources,
    capture: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Production variants with their weights, at most one shadow variant (SageMaker then allows exactly one
    production variant), data capture when asked. KmsKeyId only for EBS-only types: for types with local
    NVMe storage a hardware module encrypts the volume and the key would encrypt nothing
    (CreateEndpointConfig API reference, KmsKeyId; earlier versions of that reference said the call fails),
    so it is not sent."""

    def variant(hosted: HostedVariant) -> dict[str, Any]:
        return {
            "VariantName": hosted.name,
            "ModelName": hosted.model_name,
            "InstanceType": instance.name,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": float(hosted.weight),
            # large models take minutes to download and load; the defaults fail them (60-3600 s allowed)
            "ModelDataDownloadTimeoutInSeconds": 1800,
            "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
        }

    request: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [variant(v) for v in variants if not v.shadow],
    }
    shadows = [variant(v) for v in variants if v.shadow]
    if shadows:
        request["ShadowProductionVariants"] = shadows
    if capture is not None:
        request["DataCaptureConfig"] = capture
    if not instance.local_nvme:
        request["KmsKeyId"] = aws.kms_key_arn
    return request


def deployment_config(*, canary_percent: int | None, wait_seconds: int, rollback_alarms: list[str]) -> dict[str, Any]:
    """UpdateEndpoint's blue/green policy: the new fleet takes traffic all at once once healthy, or (a
    canary) ``canary_percent`` of its capacity first for ``wait_seconds``; the old fleet is kept
    ``wait_seconds`` more, and any alarm in ALARM meanwhile rolls the update back
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeploymentConfig.html)."""
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    if canary_percent is not None:
        routing = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary_percent},
            "WaitIntervalInSeconds": wait_seconds,
        }
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": wait_seconds,
            # MaximumExecutionTimeoutInSeconds: 600-28800 and more than the waits it covers
            "MaximumExecutionTimeoutInSeconds": max(600, 6 * wait_seconds),
        },
    }
    if rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in rollback_alarms]}
    return config


#: a canary variant's model latency (microseconds) whose p90 over a minute rolls it back: half of the 60 s
#: InvokeEndpoint allows a real-time answer
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html)
ROLLBACK_LATENCY_MICROSECONDS = 30_000_000


def rollback_alarms(prefix: str, endpoint_name: str, variant_name: str) -> list[dict[str, Any]]:
    """PutMetricAlarm requests watching one variant while a canary bakes: any 5XX answer of its model in a
    minute, or its model latency's p90 above ``ROLLBACK_LATENCY_MICROSECONDS``. Deployment guardrails roll
    the update back when one is in ALARM, and do nothing without alarms
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html); a minute
    without requests is no evidence either way (TreatMissingData notBreaching). Names start with the stack's
    ``prefix``, which is what its functions may create."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}]
    common = {
        "Namespace": "AWS/SageMaker",
        "Dimensions": dimensions,
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }
    stem = f"{prefix}-{endpoint_name}-{variant_name}"
    return [
        {
            **common,
            "AlarmName": f"{stem}-5xx",
            "AlarmDescription": f"rolls back a canary of {endpoint_name}: {variant_name} answered with a 5XX error",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": 1.0,
        },
        {
            **common,
            "AlarmName": f"{stem}-latency",
            "AlarmDescription": f"rolls back a canary of {endpoint_name}: {variant_name}'s p90 model latency >= 30 s",
            "MetricName": "ModelLatency",
            "ExtendedStatistic": "p90",
            "Threshold": float(ROLLBACK_LATENCY_MICROSECONDS),
        },
    ]


def update_endpoint_weights(endpoint_name: str, weights: dict[str, int]) -> dict[str, Any]:
    """Traffic between the variants an endpoint already runs, without new instances."""
    return {
        "EndpointName": endpoint_name,
        "DesiredWeightsAndCapacities": [
            {"VariantName": name, "DesiredWeight": float(w)} for name, w in weights.items()
        ],
    }


def update_model_package_alias(arn: str, alias: str, metadata: dict[str, str], approval: str) -> dict[str, Any]:
    """A model package's place in the rollout (``trainforge:alias``: champion, challenger, previous,
    rolled-back) and its approval. SageMaker merges CustomerMetadataProperties and keeps an approval that is
    not sent; both are sent whole so that a store which replaces them (moto) keeps them too."""
    return {
        "ModelPackageArn": arn,
        "ModelApprovalStatus": approval,
        "ApprovalDescription": f"{alias} through a TrainForge rollout",
        "CustomerMetadataProperties": {**metadata, "trainforge:alias": alias},
    }


#: CustomerMetadataProperties: at most 50 entries, values of at most 256 characters
#: (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateModelPackage.html)
MAX_METADATA_ENTRIES = 50


def update_model_package_evaluation(
    arn: str, metadata: dict[str, str], evaluation: dict[str, str], approval: str
) -> dict[str, Any]:
    """A model package's latest continuous evaluation (``trainforge:evaluation:*`` keys, replacing the previous
    one's) in its metadata; its approval and other metadata sent whole as in ``update_model_package_alias``."""
    kept = {k: v for k, v in metadata.items() if not k.startswith("trainforge:evaluation:")}
    if len(kept) + len(evaluation) > MAX_METADATA_ENTRIES:
        raise ValueError(f"{arn}: {len(kept)} + {len(evaluation)} metadata entries exceed {MAX_METADATA_ENTRIES}")
    return {
        "ModelPackageArn": arn,
        "ModelApprovalStatus": approval,
        "CustomerMetadataProperties": {**kept, **{k: v[:256] for k, v in evaluation.items()}},
    }


def create_model_import_job(name: str, model_uri: str, aws: AwsResources) -> dict[str, Any]:
    """Bedrock Custom Model Import of the model folder, as the stack's Bedrock role, into the stack's key."""
    return {
        "jobName": name,
        "importedModelName": name,
        "roleArn": aws.bedrock_role_arn,
        "modelDataSource": {"s3DataSource": {"s3Uri": model_uri.rstrip("/") + "/"}},
        "importedModelKmsKeyId": aws.kms_key_arn,
        "vpcConfig": {"subnetIds": list(aws.subnets), "securityGroupIds": list(aws.security_group_ids)},
    }
