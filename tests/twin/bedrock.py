"""Bedrock Custom Model Import, added to moto's bedrock response class (moto 5.2.5 lacks
CreateModelImportJob, GetModelImportJob, ListModelImportJobs and GetImportedModel), so every client in the
process reaches it; the jobs and imported models live in the twin (``ModelImports``).

An import job detects the model's architecture from its ``config.json`` and accepts only the supported ones,
as Bedrock documents it (https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-import-model.html;
the folder's files are held to the rules when the job is created). The job is InProgress, then Completed
with an ``importedModelArn`` or Failed with a ``failureMessage`` (the twin's wording: AWS does not document
its messages).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.bedrock.responses import BedrockResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.moto_api._internal import mock_random

from tests.twin import storage
from tests.twin.wire import Patches, ValidationException

if TYPE_CHECKING:
    from tests.twin.twin import SageMakerTwin

#: config.json "architectures" that Custom Model Import accepts (Mistral, Mixtral, Flan-T5, Llama 2/3.x and
#: Mllama, GPTBigCode, Qwen2/2.5/3 and their VL models, GPT-OSS), from the page cited above.
SUPPORTED_ARCHITECTURES = frozenset(
    {
        "MistralForCausalLM",
        "MixtralForCausalLM",
        "T5ForConditionalGeneration",
        "LlamaForCausalLM",
        "MllamaForConditionalGeneration",
        "GPTBigCodeForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen2VLForConditionalGeneration",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "GptOssForCausalLM",
    }
)


class ResourceNotFoundException(ServiceException):
    code = "ResourceNotFoundException"


class ConflictException(ServiceException):
    code = "ConflictException"


def model_problem(s3: Any, uri: str) -> tuple[str, str]:
    """("", architecture) when the model at ``uri`` is of an architecture Import accepts, else (why not, "").
    That the folder holds the weights, config and tokenizer is checked when the job is created (the rule
    bedrock-import.model-files); the architecture is what the job itself detects and validates."""
    bucket, key = storage.split(uri.rstrip("/") + "/config.json")
    try:
        config = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return f"No config.json was found at {uri}.", ""
    architectures = config.get("architectures") or []
    supported = [a for a in architectures if a in SUPPORTED_ARCHITECTURES]
    if not supported:
        return (
            f"The model architecture {architectures or config.get('model_type')} is not supported. "
            f"Supported architectures: {', '.join(sorted(SUPPORTED_ARCHITECTURES))}.",
            "",
        )
    return "", supported[0]


class ModelImports:
    """The import jobs and imported models of one twin, across accounts and regions."""

    def __init__(self, twin: SageMakerTwin) -> None:
        self.twin = twin
        self.jobs: dict[str, dict[str, Any]] = {}  # job ARN -> GetModelImportJob response
        self.models: dict[str, dict[str, Any]] = {}  # model ARN -> GetImportedModel response
        self.threads: list[threading.Thread] = []

    def find(self, table: dict[str, dict[str, Any]], identifier: str, name_field: str) -> dict[str, Any]:
        for arn, item in table.items():
            if identifier in (arn, item[name_field]):
                return item
        raise ResourceNotFoundException(f"Could not find {identifier}")

    def create(self, request: dict[str, Any], account: str, region: str) -> str:
        if any(job["jobName"] == request["jobName"] for job in self.jobs.values()):
            raise ConflictException(f"A model import job with the name {request['jobName']} already exists.")
        if "s3DataSource" not in request.get("modelDataSource", {}):
            raise ValidationException("modelDataSource: the twin emulates s3DataSource imports only")
        arn = (
            f"arn:aws:bedrock:{region}:{account}:model-import-job/{mock_random.get_random_string(12, lower_case=True)}"
        )
        stamp = datetime.now(UTC)
        job = {
            "jobArn": arn,
            "jobName": request["jobName"],
            "importedModelName": request["importedModelName"],
            "roleArn": request["roleArn"],
            "modelDataSource": request["modelDataSource"],
            "status": "InProgress",
            "creationTime": stamp,
            "lastModifiedTime": stamp,
            **{key: request[key] for key in ("vpcConfig",) if key in request},
            **(
                {"importedModelKmsKeyArn": request["importedModelKmsKeyId"]}
                if "importedModelKmsKeyId" in request
                else {}
            ),
        }
        self.jobs[arn] = job
        thread = threading.Thread(
            target=self._import, args=(job, account, region), daemon=True, name=f"twin-import-{arn}"
        )
        self.threads.append(thread)
        thread.start()
        return arn

    def _import(self, job: dict[str, Any], account: str, region: str) -> None:
        time.sleep(self.twin.import_seconds)
        uri = job["modelDataSource"]["s3DataSource"]["s3Uri"]
        try:
            problem, architecture = model_problem(storage.client("s3", region), uri)
        except Exception as error:
            problem, architecture = f"Internal failure reading {uri}: {type(error).__name__}: {error}", ""
        stamp = datetime.now(UTC)
        if problem:
            job.update(status="Failed", failureMessage=problem, lastModifiedTime=stamp, endTime=stamp)
            return
        model_arn = (
            f"arn:aws:bedrock:{region}:{account}:imported-model/{mock_random.get_random_string(12, lower_case=True)}"
        )
        self.models[model_arn] = {
            "modelArn": model_arn,
            "modelName": job["importedModelName"],
            "jobName": job["jobName"],
            "jobArn": job["jobArn"],
            "modelDataSource": job["modelDataSource"],
            "creationTime": stamp,
            "modelArchitecture": architecture,
            **({"modelKmsKeyArn": job["importedModelKmsKeyArn"]} if "importedModelKmsKeyArn" in job else {}),
        }
        job.update(status="Completed", importedModelArn=model_arn, lastModifiedTime=stamp, endTime=stamp)

    def install(self, patches: Patches) -> None:
        """The actions, as methods of moto's BedrockResponse (it routes every bedrock path to them)."""
        imports = self

        def create_model_import_job(self: BedrockResponse) -> ActionResult:
            return ActionResult({"jobArn": imports.create(json.loads(self.body), self.current_account, self.region)})

        def get_model_import_job(self: BedrockResponse) -> ActionResult:
            identifier = self._get_param("jobIdentifier") or self.uri_match["jobIdentifier"]
            return ActionResult(dict(imports.find(imports.jobs, identifier, "jobName")))

        def list_model_import_jobs(self: BedrockResponse) -> ActionResult:
            return ActionResult({"modelImportJobSummaries": [dict(job) for job in imports.jobs.values()]})

        def get_imported_model(self: BedrockResponse) -> ActionResult:
            identifier = self._get_param("modelIdentifier") or self.uri_match["modelIdentifier"]
            return ActionResult(dict(imports.find(imports.models, identifier, "modelName")))

        for action in (create_model_import_job, get_model_import_job, list_model_import_jobs, get_imported_model):
            patches.set(BedrockResponse, action.__name__, action)
