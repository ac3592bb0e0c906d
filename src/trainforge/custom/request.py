"""What a custom job's training request carries: the image, the hyperparameters and the environment, in
both modes. Everything else in the request (channels, role, VPC, KMS, isolation, runtime bounds, volume)
is the pipeline's own and stays as it is for any run."""

from __future__ import annotations

from dataclasses import dataclass

from trainforge.custom.frameworks import framework_placement
from trainforge.custom.own_image import check_own_image
from trainforge.custom.script_mode import (
    ARCHIVE_NAME,
    CODE_CHANNEL,
    job_environment,
    plain_text,
    request_hyperparameters,
)
from trainforge.custom.source import pack_source
from trainforge.errors import SpecInvalid
from trainforge.instances import InstanceType
from trainforge.spec import CustomSpec
from trainforge.store import join, open_store

#: the hyperparameter that names the base model (the evaluation config reads it, as for the built-in loop)
BASE_MODEL_ID = "base_model_id"


@dataclass(frozen=True)
class CustomParts:
    #: the framework container (or the user's own); None locally, where the script runs in a virtualenv
    image: str | None
    hyperparameters: dict[str, str]
    #: the job's whole Environment: none of the pipeline's own (its loop's Neuron compiler flags, for one)
    environment: dict[str, str]
    #: the input channels it adds: ``code``, the folder of the packed source (script mode)
    channels: dict[str, str]


def custom_parts(
    custom: CustomSpec,
    *,
    source_uri: str | None,
    code_uri: str,
    base_model_id: str,
    instance: InstanceType | None,
    region: str,
    account: str = "",
    prefix: str = "",
) -> CustomParts:
    """Pack the source into ``code_uri`` (the run's code channel; script mode) and say what the request
    carries. ``instance`` is None in local mode; ``source_uri`` is the resolved ``custom.source`` (None for
    a container of the user's own, which must come from the stack's ``account`` and ``prefix``:
    :mod:`trainforge.custom.own_image`)."""
    if custom.image is not None:
        if instance is None:
            raise SpecInvalid(
                "custom.image runs a container, and local mode has no container runtime: run the job in AWS, or "
                "give entry_point, source and framework to run the script here"
            )
        check_own_image(custom.image, account=account, region=region, prefix=prefix)
        # plain text, as a script's own command line would have it: JSON-encoded strings are the framework
        # containers' convention, which their toolkit decodes, and a container of one's own has no toolkit
        values = {**custom.hyperparameters, BASE_MODEL_ID: base_model_id}
        return CustomParts(custom.image, {name: plain_text(value) for name, value in values.items()}, {}, {})
    assert custom.entry_point is not None and custom.framework is not None and source_uri is not None
    if instance is not None and custom.evaluation_entry_point is not None:
        raise SpecInvalid(
            "custom.evaluation_entry_point runs in local mode (trainforge run) in this release; in AWS the "
            "evaluation job runs the built-in evaluation: save an HF folder into SM_MODEL_DIR and leave "
            "evaluation_entry_point out"
        )
    packed = pack_source(custom, source_uri, offline=instance is not None)
    archive_uri = join(code_uri, ARCHIVE_NAME)
    open_store(archive_uri).write_bytes(archive_uri, packed.archive, "application/gzip")
    hyperparameters = request_hyperparameters(
        {**custom.hyperparameters, BASE_MODEL_ID: base_model_id}, custom.entry_point, region
    )
    channels = {CODE_CHANNEL: code_uri.rstrip("/") + "/"}
    if instance is None:
        return CustomParts(None, hyperparameters, {}, channels)
    placed = framework_placement(custom.framework, instance, region)
    environment = placed.environment | job_environment(packed.requirements_file is not None)
    return CustomParts(placed.image, hyperparameters, environment, channels)
