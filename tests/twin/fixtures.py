"""Pytest fixtures of the twin. Import them into a conftest.py::

    from tests.twin.fixtures import sagemaker_twin, twin_aws, twin_images  # noqa: F401

``twin_images`` (session): this repository's two images, registered as ``GPU_IMAGE`` (which also stands in
for AWS's LMI images) and ``NEURON_IMAGE``, their venvs built before the first test that needs them.
``twin_aws``: moto with the Step Functions engine executing definitions and Lambda without Docker, in the
environment of ``aws_env`` (tests/conftest.py).
``sagemaker_twin``: the twin installed in ``twin_aws``; it asserts on teardown that no request broke a rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws
from moto.core.config import DefaultConfig

from tests.twin.images import ImageRegistry
from tests.twin.twin import SageMakerTwin
from tests.twin.venvs import VenvBuilder

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
GPU_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/trainforge:gpu"
NEURON_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/trainforge:neuron"
MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@pytest.fixture(scope="session")
def twin_images(tmp_path_factory: pytest.TempPathFactory) -> ImageRegistry:
    images = ImageRegistry(VenvBuilder(ROOT / ".twin" / "venvs", tmp_path_factory.mktemp("twin-session")))
    images.register(GPU_IMAGE, ROOT / "training_image" / "Dockerfile")
    images.register(NEURON_IMAGE, ROOT / "training_image" / "Dockerfile.neuron")
    images.serve_lmi_with(GPU_IMAGE)
    images.prepare()
    return images


@pytest.fixture
def twin_aws(aws_env: None) -> Iterator[None]:
    """``aws_env`` (tests/conftest.py: region us-east-1, test credentials) and moto as the twin needs it."""
    with mock_aws(config=MOTO_CONFIG):
        yield


@pytest.fixture
def sagemaker_twin(twin_aws: None, twin_images: ImageRegistry, tmp_path: Path) -> Iterator[SageMakerTwin]:
    with SageMakerTwin(twin_images, tmp_path / "twin") as twin:
        yield twin
    assert not twin.violations, "\n".join(map(str, twin.violations))
