"""Prepare (AWS mode, moto S3) for a custom job: the request carries the custom job's own environment and
hyperparameters, not the built-in loop's, and a container of one's own comes from where the role may pull."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.pipeline.test_prepare import DATA, PLATFORM, admitted, aws, rows, validated  # noqa: F401 (fixture)
from trainforge.errors import SpecInvalid
from trainforge.pipeline import steps
from trainforge.pipeline.platform import Platform
from trainforge.settings import Settings

OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge-custom/mine:1"
SPEC = """name: support
base_model: s3://tf-artifacts/base-models/tiny/
method: custom
custom: {{image: {image}, hyperparameters: {{optimizer: adam, epochs: 2}}}}
data: {{train: datasets/support/train.jsonl, validation_fraction: 0.2}}
compute: {{instance_type: ml.trn1.2xlarge, max_runtime_hours: 1}}
"""


def test_a_custom_job_on_trainium_gets_its_own_environment_and_plain_hyperparameters(aws) -> None:  # noqa: F811
    """The pipeline's Trainium placement sets NEURON_CC_FLAGS for its own loop; a custom job's request leaves
    it (and the rest of the loop's environment) out, and Prepare holds the image to the stack's PREFIX-custom/."""
    settings = Settings(
        sagemaker_role_arn="arn:aws:iam::123456789012:role/trainforge-sagemaker", alarm_prefix="trainforge"
    )
    from_settings = Platform.from_settings(settings, local=False)
    assert (from_settings.account, from_settings.prefix) == ("123456789012", "trainforge")
    platform = dataclasses.replace(PLATFORM, region="us-east-1", account="123456789012", prefix="trainforge")
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("v1", 20).encode())
    request, spec = admitted(aws, SPEC.format(image=OWN))
    training = steps.prepare_training(request, spec, validated(request, spec), platform)
    assert training.image == OWN and training.environment == {}
    assert training.hyperparameters == {"optimizer": "adam", "epochs": "2", "base_model_id": "tiny"}
    request, spec = admitted(aws, SPEC.format(image=OWN.replace("trainforge-custom/", "")))
    with pytest.raises(SpecInvalid, match=r"trainforge-custom/\*"):
        steps.prepare_training(request, spec, validated(request, spec), platform)
