"""Will the tuned model deploy where the spec says? Checked before training, from the base model's
``config.json`` and files: the tuned model keeps the base's architecture and tokenizer, and the export
(``training/export.py``) writes it merged (LoRA included), in float32, as ``model.safetensors``.

- ``bedrock_import``: Bedrock Custom Model Import's regions, architectures, the files it requires, the
  precisions and the size it takes
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-import-model.html). The
  deployer (``serving/deployers/bedrock.py``) refuses an architecture with the same rule at deploy time.
- ``sagemaker_endpoint``: the engine that will serve it (``sagemaker_requests.serving_engine``: LMI with
  vLLM, or this project's server), and the endpoint instance's memory against the merged weights in bf16
  plus the KV cache of one sequence at ``deploy.max_model_len``. vLLM (LMI) refuses a ``max_model_len``
  above the model's ``max_position_embeddings`` and takes 90% of the GPUs' memory
  (``gpu_memory_utilization``, https://docs.vllm.ai/en/latest/configuration/engine_args.html), over all
  the instance's GPUs (``TENSOR_PARALLEL_DEGREE=max``); this project's server loads the model onto one GPU
  (``serving/engine.py``), or into host memory in float32 on a CPU type.
- ``local`` and ``none``: nothing to check.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from trainforge.aws.sagemaker_requests import serving_engine
from trainforge.contracts import DeployCheck, PlannedDeployment
from trainforge.errors import SpecInvalid
from trainforge.instances import INSTANCE_TYPES, InstanceType, instance_type
from trainforge.planning.architecture import ModelShape
from trainforge.planning.memory import GiB, gib
from trainforge.spec import JobSpec

#: config.json ``model_type`` -> the family Bedrock Custom Model Import accepts (the page cited above,
#: "Supported architectures": Mistral, Mixtral, Flan (T5), Llama 2 to 3.3 and Mllama, GPTBigCode, Qwen2,
#: Qwen2.5, Qwen2-VL, Qwen2.5-VL, Qwen3 (Qwen3ForCausalLM and Qwen3MoeForCausalLM), GPT-OSS)
BEDROCK_IMPORTABLE = {
    "llama": "Llama",
    "mllama": "Mllama (Llama 3.2 Vision)",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "t5": "Flan (T5)",
    "gpt_bigcode": "GPTBigCode",
    "qwen2": "Qwen2/2.5",
    "qwen2_vl": "Qwen2-VL",
    "qwen2_5_vl": "Qwen2.5-VL",
    "qwen3": "Qwen3",
    "qwen3_moe": "Qwen3 MoE",
    "gpt_oss": "GPT-OSS",
}
#: the regions Import is offered in ("Custom model import is supported in the following regions")
BEDROCK_IMPORT_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-central-1")
#: architectures offered in fewer of them: "GPT-OSS model architecture is only supported in the US East
#: (N. Virginia) region"
BEDROCK_ARCHITECTURE_REGIONS = {"gpt_oss": ("us-east-1",)}
#: weight precisions Import accepts, as config.json's ``torch_dtype`` names them
BEDROCK_DTYPES = frozenset({"float32", "float16", "bfloat16"})
#: the largest model folder Import takes, as the page gave it when this table was written (200 GB)
BEDROCK_MAX_MODEL_BYTES = 200 * 10**9
#: the share of the GPUs' memory vLLM takes for weights, activations and KV cache (its default)
VLLM_MEMORY_SHARE = 0.9
#: CUDA context, cuBLAS workspaces and the forward's activations of one sequence, beside weights and cache
SERVING_OVERHEAD_BYTES = 2 * GiB
#: share of a CPU endpoint's host memory the server may use (the rest: the OS, the web server)
CPU_SERVING_SHARE = 0.8
#: the export's dtype and its width (training/export.py writes float32)
EXPORT_DTYPE, EXPORT_BYTES_PER_PARAMETER = "float32", 4


def bedrock_importable(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether Import accepts this config's architecture, and a sentence saying so (with the alternatives)."""
    model_type = str(config.get("model_type", ""))
    if model_type in BEDROCK_IMPORTABLE:
        return True, f"{BEDROCK_IMPORTABLE[model_type]} ({model_type}) is an architecture Import accepts"
    accepted = ", ".join(sorted(BEDROCK_IMPORTABLE.values()))
    return False, (
        f"Bedrock Custom Model Import does not accept model_type '{model_type}': accepted families are {accepted}; "
        "use deploy.target: sagemaker_endpoint for this model"
    )


def kv_cache_bytes(shape: ModelShape, positions: int, bytes_per_value: int = 2) -> int:
    """Keys and values of every layer for ``positions`` positions of one sequence."""
    return 2 * shape.layers * shape.kv_width * bytes_per_value * positions


def import_regions(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The regions Import takes this config's architecture in."""
    return BEDROCK_ARCHITECTURE_REGIONS.get(str(config.get("model_type", "")), BEDROCK_IMPORT_REGIONS)


def plan_deployment(
    spec: JobSpec, config: Mapping[str, Any], files: Collection[str], shape: ModelShape | None, *, region: str
) -> PlannedDeployment:
    """``files``: the names in the base model's folder; ``region``: where the run deploys."""
    target = spec.deploy.target
    if target in ("local", "none"):
        return PlannedDeployment(target=target, ok=True)
    if target == "bedrock_import":
        return _bedrock(config, files, shape, region)
    return _endpoint(spec, config, shape)


def _bedrock(
    config: Mapping[str, Any], files: Collection[str], shape: ModelShape | None, region: str
) -> PlannedDeployment:
    importable, why = bedrock_importable(config)
    checks = [DeployCheck(name="architecture", ok=importable, detail=why)]
    regions = import_regions(config)
    offered = region in regions
    checks.append(
        DeployCheck(
            name="region",
            ok=offered,
            detail=f"Import is offered in {region}"
            if offered
            else f"Import{' of ' + BEDROCK_IMPORTABLE[str(config['model_type'])] if importable else ''} is offered "
            f"in {', '.join(regions)} only, not in {region}",
        )
    )
    tokenizer = bool({"tokenizer.json", "tokenizer.model"} & set(files))
    checks.append(
        DeployCheck(
            name="files",
            ok=tokenizer,
            detail="the export writes model.safetensors, config.json and the base's tokenizer files"
            if tokenizer
            else "the base model has no tokenizer.json or tokenizer.model, which Import requires beside the weights",
        )
    )
    checks.append(
        DeployCheck(
            name="precision",
            ok=EXPORT_DTYPE in BEDROCK_DTYPES,
            detail=f"exported in {EXPORT_DTYPE} with LoRA merged into the weights (Import takes FP32, FP16 or BF16 "
            "weights and no separate adapter)",
        )
    )
    if shape is not None:
        size = shape.parameters * EXPORT_BYTES_PER_PARAMETER
        checks.append(
            DeployCheck(
                name="size",
                ok=size <= BEDROCK_MAX_MODEL_BYTES,
                detail=f"{size / 10**9:.1f} GB of float32 weights, limit {BEDROCK_MAX_MODEL_BYTES / 10**9:.0f} GB",
            )
        )
    ok = all(check.ok for check in checks)
    alternatives = [] if ok else ["deploy.target: sagemaker_endpoint (LMI/vLLM or this project's server)"]
    if importable and not offered:
        alternatives.append(f"deploying the stacks in {' or '.join(regions)}")
    return PlannedDeployment(target="bedrock_import", ok=ok, checks=checks, engine="bedrock", alternatives=alternatives)


def _endpoint(spec: JobSpec, config: Mapping[str, Any], shape: ModelShape | None) -> PlannedDeployment:
    deploy = spec.deploy
    architectures = [str(a) for a in config.get("architectures") or []]
    checks: list[DeployCheck] = []
    alternatives: list[str] = []
    try:
        engine = serving_engine(deploy.engine, architectures)
    except SpecInvalid as exc:
        return PlannedDeployment(
            target="sagemaker_endpoint",
            ok=False,
            checks=[DeployCheck(name="engine", ok=False, detail=str(exc))],
            engine=deploy.engine,
            instance_type=deploy.instance_type,
            alternatives=["deploy.engine: trainforge"],
        )
    checks.append(
        DeployCheck(
            name="engine",
            ok=True,
            detail=f"{'LMI (vLLM)' if engine == 'lmi' else 'this project server'} serves {architectures or 'it'}",
        )
    )
    instance = instance_type(deploy.instance_type)
    if engine == "lmi" and instance.accelerator != "cuda":
        checks.append(
            DeployCheck(name="instance", ok=False, detail=f"LMI runs on GPU types; {instance.name} has no GPU")
        )
        alternatives.append("deploy.engine: trainforge (it also serves from a CPU type)")
    positions = int(config.get("max_position_embeddings") or 0)
    if engine == "lmi" and positions and deploy.max_model_len > positions:
        checks.append(
            DeployCheck(
                name="context",
                ok=False,
                detail=f"deploy.max_model_len {deploy.max_model_len} is above the model's {positions} positions, "
                "which vLLM refuses",
            )
        )
        alternatives.append(f"deploy.max_model_len: {positions}")
    needed = capacity = None
    if shape is not None:
        needed = serving_bytes(shape, instance, deploy.max_model_len)
        capacity = serving_capacity(instance, engine)
        fits = needed <= capacity
        checks.append(
            DeployCheck(
                name="memory",
                ok=fits,
                detail=f"weights and the KV cache of one {deploy.max_model_len}-token sequence need {gib(needed)} "
                f"GiB; {instance.name} offers {'LMI (vLLM)' if engine == 'lmi' else 'the server'} {gib(capacity)} GiB",
            )
        )
        if not fits:
            larger = smallest_serving_type(shape, deploy.max_model_len, engine)
            alternatives.append(f"deploy.instance_type: {larger}" if larger else "a smaller model")
    return PlannedDeployment(
        target="sagemaker_endpoint",
        ok=all(c.ok for c in checks),
        checks=checks,
        engine=engine,
        instance_type=instance.name,
        needed_bytes=needed,
        capacity_bytes=capacity,
        alternatives=alternatives,
    )


def serving_bytes(shape: ModelShape, instance: InstanceType, max_model_len: int) -> int:
    """bf16 weights and cache on a GPU; float32 weights in host memory on a CPU type (``serving/engine.py``)."""
    width = 2 if instance.accelerator == "cuda" else 4
    return shape.parameters * width + kv_cache_bytes(shape, max_model_len, width) + SERVING_OVERHEAD_BYTES


def serving_capacity(instance: InstanceType, engine: str) -> int:
    if instance.accelerator != "cuda":
        return int(instance.memory_gib * GiB * CPU_SERVING_SHARE)
    gpus = instance.accelerators if engine == "lmi" else 1
    return int(gpus * instance.accelerator_memory_gib * GiB * VLLM_MEMORY_SHARE)


def smallest_serving_type(shape: ModelShape, max_model_len: int, engine: str) -> str | None:
    """The GPU type with the least GPU memory in all that serves the model (then the fewest GPUs)."""
    fitting = [
        t
        for t in INSTANCE_TYPES.values()
        if t.accelerator == "cuda" and serving_bytes(shape, t, max_model_len) <= serving_capacity(t, engine)
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda t: (t.total_accelerator_memory_gib, t.accelerators, t.memory_gib)).name
