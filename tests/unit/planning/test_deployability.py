"""Will the tuned model deploy where the spec says: Bedrock import's rules, the endpoint's engine, memory
and context; the deployer refuses with the plan's own rule."""

from __future__ import annotations

import pytest

from tests.unit.planning.shapes import LLAMA_8B, NEOX, SMOLLM2, spec
from trainforge.errors import DeploymentRefused
from trainforge.planning import ModelShape
from trainforge.planning.deployability import BEDROCK_IMPORTABLE, kv_cache_bytes, plan_deployment
from trainforge.planning.memory import GiB
from trainforge.serving.deployers.bedrock import check_importable

FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
REGION = "us-east-1"


def _failed(deployment):
    return {check.name for check in deployment.checks if not check.ok}


def test_bedrock_takes_a_llama_merged_in_float32():
    deployment = plan_deployment(
        spec(deploy="{target: bedrock_import}"), SMOLLM2, FILES, ModelShape.from_config(SMOLLM2), region=REGION
    )
    assert deployment.ok and {c.name for c in deployment.checks} == {
        "architecture",
        "region",
        "files",
        "precision",
        "size",
    }


def test_bedrock_refuses_an_architecture_it_does_not_import_and_names_the_alternative():
    deployment = plan_deployment(
        spec(deploy="{target: bedrock_import}"), NEOX, FILES, ModelShape.from_config(NEOX), region=REGION
    )
    assert not deployment.ok and _failed(deployment) == {"architecture"}
    assert (
        "gpt_neox" in deployment.checks[0].detail and "deploy.target: sagemaker_endpoint" in deployment.alternatives[0]
    )
    # the deployer refuses with the same rule at deploy time
    with pytest.raises(DeploymentRefused, match="does not accept model_type 'gpt_neox'"):
        check_importable(NEOX)
    assert check_importable(SMOLLM2) == "Llama"


def test_bedrock_needs_the_tokenizer_beside_the_weights():
    deployment = plan_deployment(spec(deploy="{target: bedrock_import}"), SMOLLM2, {"config.json"}, None, region=REGION)
    assert _failed(deployment) == {"files"}


def test_an_endpoint_fits_the_weights_and_one_sequence_of_kv_cache():
    shape = ModelShape.from_config(LLAMA_8B)
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 wide, K and V in bf16: 128 KiB a position
    assert kv_cache_bytes(shape, 1) == 128 * 1024
    fits = plan_deployment(
        spec(deploy="{instance_type: ml.g5.2xlarge, max_model_len: 4096}"), LLAMA_8B, FILES, shape, region=REGION
    )
    assert fits.ok and fits.engine == "lmi"
    assert fits.needed_bytes == shape.parameters * 2 + 4096 * 128 * 1024 + 2 * GiB
    too_long = plan_deployment(
        spec(deploy="{instance_type: ml.g5.2xlarge, max_model_len: 65536}"), LLAMA_8B, FILES, shape, region=REGION
    )
    assert _failed(too_long) == {"memory"}
    # the smallest GPU type that holds it: one with more GPU memory, LMI spreading over its GPUs
    assert too_long.alternatives == ["deploy.instance_type: ml.g6e.xlarge"]


def test_lmi_refuses_a_context_longer_than_the_model_and_a_type_without_a_gpu():
    shape = ModelShape.from_config(NEOX)
    long = plan_deployment(
        spec(deploy="{instance_type: ml.g5.xlarge, max_model_len: 4096}"), NEOX, FILES, shape, region=REGION
    )
    assert _failed(long) == {"context"} and long.alternatives == ["deploy.max_model_len: 512"]
    cpu = plan_deployment(
        spec(deploy="{instance_type: ml.m5.xlarge, max_model_len: 512}"), NEOX, FILES, shape, region=REGION
    )
    assert _failed(cpu) == {"instance"} and "deploy.engine: trainforge" in cpu.alternatives[0]
    # this project's server takes any context and serves from host memory on a CPU type
    own = plan_deployment(
        spec(deploy="{instance_type: ml.m5.xlarge, max_model_len: 4096, engine: trainforge}"),
        NEOX,
        FILES,
        shape,
        region=REGION,
    )
    assert own.ok and own.engine == "trainforge"


def test_lmi_asked_for_an_architecture_vllm_does_not_serve():
    config = {**NEOX, "architectures": ["WhisperForConditionalGeneration"]}
    deployment = plan_deployment(spec(deploy="{engine: lmi}"), config, FILES, None, region=REGION)
    assert _failed(deployment) == {"engine"} and deployment.alternatives == ["deploy.engine: trainforge"]


def test_local_and_no_deployment_have_nothing_to_check():
    for target in ("local", "none"):
        assert plan_deployment(spec(deploy=f"{{target: {target}}}"), NEOX, set(), None, region=REGION).ok


@pytest.mark.parametrize("region", ["us-east-1", "us-east-2", "us-west-2", "eu-central-1"])
def test_bedrock_imports_in_the_regions_that_offer_it(region):
    deployment = plan_deployment(spec(deploy="{target: bedrock_import}"), SMOLLM2, FILES, None, region=region)
    assert deployment.ok


def test_bedrock_import_elsewhere_is_refused_naming_the_regions():
    deployment = plan_deployment(spec(deploy="{target: bedrock_import}"), SMOLLM2, FILES, None, region="eu-west-1")
    assert _failed(deployment) == {"region"}
    (region,) = [c for c in deployment.checks if c.name == "region"]
    assert (
        region.detail
        == "Import of Llama is offered in us-east-1, us-east-2, us-west-2, eu-central-1 only, not in eu-west-1"
    )
    assert "deploy.target: sagemaker_endpoint" in deployment.alternatives[0]
    assert deployment.alternatives[1] == "deploying the stacks in us-east-1 or us-east-2 or us-west-2 or eu-central-1"


def test_gpt_oss_imports_in_us_east_1_only():
    gpt_oss = {**SMOLLM2, "model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"]}
    assert plan_deployment(spec(deploy="{target: bedrock_import}"), gpt_oss, FILES, None, region="us-east-1").ok
    elsewhere = plan_deployment(spec(deploy="{target: bedrock_import}"), gpt_oss, FILES, None, region="us-west-2")
    assert _failed(elsewhere) == {"region"} and "GPT-OSS is offered in us-east-1 only" in elsewhere.checks[1].detail


@pytest.mark.parametrize("model_type", ["gpt_bigcode", "qwen3", "qwen3_moe", "mllama", "qwen2_vl", "qwen2_5_vl", "t5"])
def test_the_architectures_the_import_page_lists_are_accepted(model_type):
    assert model_type in BEDROCK_IMPORTABLE
    assert check_importable({**NEOX, "model_type": model_type}) == BEDROCK_IMPORTABLE[model_type]
