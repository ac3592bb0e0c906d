"""Which of AWS's training containers runs a custom script, per framework and instance family, and what a
local run stands in for each one's Python.

The choice of image, device and environment per family stays with ``sagemaker_requests.placement`` (the one
owner, which also places the pipeline's own images); this table only names the framework containers it
chooses between. Sources (checked 2026-11):

- PyTorch and TensorFlow, GPU and CPU: AWS Deep Learning Containers' "SageMaker Framework Containers"
  (https://github.com/aws/deep-learning-containers/blob/master/available_images.md): repositories
  ``pytorch-training`` and ``tensorflow-training``, tags ``VERSION-{gpu,cpu}-PY[-CUDA]-OS-sagemaker``.
- PyTorch on Trainium: ``pytorch-training-neuronx``, the same DLC the project's own Trainium image is built
  from (training_image/Dockerfile.neuron).
- JAX: none, on any family. AWS publishes no JAX container with the SageMaker training toolkit: the Neuron
  JAX training image (https://github.com/aws-neuron/deep-learning-containers, docker/jax/training) installs
  no ``sagemaker-training`` and sets no ``SAGEMAKER_TRAINING_MODULE`` (its CMD is a shell), so ``IMAGE
  train`` finds no ``train`` command and ``sagemaker_program`` is ignored; and it is listed at
  public.ecr.aws/neuron, not in the DLC registries. A JAX job in AWS is refused with what to do instead (a
  container of one's own, ``custom.image``), as is TensorFlow on Trainium; JAX runs locally.

Locally the script runs in a virtualenv of ``local_packages``: the framework at the version pip has on this
machine (the containers pin their own; a script that depends on an exact version pins it in its
requirements).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainforge.aws.sagemaker_requests import Placement, dlc_image, placement
from trainforge.errors import SpecInvalid
from trainforge.instances import InstanceType


@dataclass(frozen=True)
class FrameworkImages:
    """A framework's training containers (DLC ``repository:tag``; None where AWS publishes none) and what a
    local run installs in their place."""

    gpu: str | None
    cpu: str | None
    neuron: str | None
    local_packages: tuple[str, ...]


FRAMEWORKS: dict[str, FrameworkImages] = {
    "pytorch": FrameworkImages(
        gpu="pytorch-training:2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker",
        cpu="pytorch-training:2.8.0-cpu-py312-ubuntu22.04-sagemaker",
        neuron="pytorch-training-neuronx:2.8.0-neuronx-py311-sdk2.26.0-ubuntu22.04",
        local_packages=("torch==2.13.0",),
    ),
    "jax": FrameworkImages(
        gpu=None,
        cpu=None,
        neuron=None,
        local_packages=("jax==0.10.2", "jaxlib==0.10.2", "flax==0.12.8", "optax==0.2.8"),
    ),
    "tensorflow": FrameworkImages(
        gpu="tensorflow-training:2.19.0-gpu-py312-cu125-ubuntu22.04-sagemaker",
        cpu="tensorflow-training:2.19.0-cpu-py312-ubuntu22.04-sagemaker",
        neuron=None,
        local_packages=("tensorflow-cpu==2.21.0",),
    ),
}


def framework_placement(framework: str, instance: InstanceType, region: str) -> Placement:
    """The framework's container for ``instance``'s family, placed like the pipeline's own images."""
    images = FRAMEWORKS[framework]
    wanted = {"cuda": images.gpu, "cpu": images.cpu, "neuron": images.neuron}[instance.accelerator]
    if not (images.gpu or images.cpu or images.neuron):
        raise SpecInvalid(
            f"custom.framework {framework}: AWS publishes no {framework} training container that runs a script "
            "(none has the SageMaker training toolkit); it runs in local mode only. In AWS give custom.image, a "
            "container of your own that follows the /opt/ml contract, e.g. the Neuron JAX image plus `pip install "
            "sagemaker-training`"
        )
    if wanted is None:
        offered = [kind for kind, tag in (("GPU", images.gpu), ("CPU", images.cpu), ("Trainium", images.neuron)) if tag]
        raise SpecInvalid(
            f"custom.framework {framework}: AWS publishes no {framework} training container for "
            f"{instance.name} ({'Trainium' if instance.accelerator == 'neuron' else instance.accelerator.upper()}); "
            f"pick a {' or '.join(offered)} instance type, or give custom.image (a container of your own)"
        )
    uri = dlc_image(region, wanted)
    placed = placement(instance, uri, uri)  # the device and environment for the family, as for our own images
    # but not the Neuron compiler flags that tune our own loop's graphs: a custom script sets its own
    environment = {name: value for name, value in placed.environment.items() if name != "NEURON_CC_FLAGS"}
    return replace(placed, environment=environment)


def framework_repositories() -> list[str]:
    """The DLC repositories a custom job's container may come from: what the SageMaker role must be allowed to
    pull (``infra/stacks/training.py``)."""
    tags = (tag for images in FRAMEWORKS.values() for tag in (images.gpu, images.cpu, images.neuron) if tag)
    return sorted({tag.split(":", 1)[0] for tag in tags})
