"""Images the twin can run: an image URI maps to a Dockerfile of this repository (or of a synthesized CDK
app's asset folder), and a Dockerfile maps to a virtualenv of exactly what its ``pip install`` lines install
on top of what its base image provides.

The base images our Dockerfiles name, and what Python packages they bring (the twin's one table of them):

- ``nvidia/cuda:*``: the CUDA runtime and no Python packages (the Dockerfile installs its own Python).
- AWS's Neuron training DLC (``pytorch-training-neuronx``): torch with torch-neuronx and the Neuron runtime.
  The twin stands in ``torch==2.13.0``, the CPU wheel pip takes from this machine's disk; there is no
  Neuron device and no torch-neuronx, so a Trainium job stops at the product's own "no Neuron device" error.

AWS's framework training containers (``.../pytorch-training:...``, ``pytorch-training-neuronx``,
``tensorflow-training``; script mode) are not built from this repository either: ``FrameworkRuntime`` runs the
training toolkit's steps over the framework's venv in their place. No JAX image is among them: AWS's Neuron JAX
image has no training toolkit, so it has no ``train`` command to stand in for.

AWS's LMI inference images (``.../djl-inference:...lmi...``, vLLM behind SageMaker's ``serve`` contract)
are not built from this repository: the twin runs the product's own model server from the GPU image in
their place, started the same way (``IMAGE serve``, the model in /opt/ml/model), and says so in the
endpoint's logs.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tests.twin.dockerfile import Recipe, parse_dockerfile
from trainforge.custom.frameworks import FRAMEWORKS
from trainforge.custom.venvs import cached_venv

if TYPE_CHECKING:
    from tests.twin.venvs import Runtime, VenvBuilder


@dataclass(frozen=True)
class BaseImage:
    pattern: str  # regex searched in the FROM reference
    provides: tuple[str, ...]  # requirements the base image's Python already has
    note: str


BASE_IMAGES: tuple[BaseImage, ...] = (
    BaseImage(r"^nvidia/cuda:", (), "CUDA runtime; no Python packages"),
    BaseImage(
        r"/pytorch-training-neuronx:",
        ("torch==2.13.0",),
        "AWS Neuron training DLC; torch stood in by the CPU wheel, no torch-neuronx, no Neuron device",
    ),
)

#: AWS's Large Model Inference containers (DJL Serving + vLLM):
#: https://docs.aws.amazon.com/sagemaker/latest/dg/large-model-inference-container-docs.html
LMI_IMAGE = re.compile(r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/djl-inference:[^/]*lmi")
#: AWS's framework training containers (Deep Learning Containers; trainforge.custom.frameworks names them)
FRAMEWORK_IMAGE = re.compile(
    r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<framework>pytorch|tensorflow)-training(-neuronx)?:"
)


@dataclass(frozen=True)
class ToolkitRecipe:
    entrypoint: tuple[str, ...]
    env: dict[str, str]


@dataclass(frozen=True)
class FrameworkRuntime:
    """An AWS framework container (script mode), stood in by the framework's venv (the one local custom jobs
    run in, ``trainforge.custom.venvs``) for the script, and the training toolkit's steps
    (``trainforge.custom.toolkit``, run by this machine's Python) as the image's ``train`` command. The
    toolkit stand-in does not pip-install the source's requirements: the twin's scripts need none."""

    framework: str
    venv: Path

    @property
    def recipe(self) -> ToolkitRecipe:
        python = str(self.venv / "bin" / "python")
        return ToolkitRecipe((sys.executable, "-m", "trainforge.custom.toolkit", "--python", python), {})

    @property
    def path(self) -> str:
        from tests.twin.venvs import SYSTEM_PATH

        return f"{self.venv / 'bin'}:{SYSTEM_PATH}"

    def executable(self, command: str) -> str:
        return command


def base_image(reference: str, dockerfile: Path) -> BaseImage:
    for base in BASE_IMAGES:
        if re.search(base.pattern, reference):
            return base
    raise LookupError(
        f"{dockerfile}: the twin does not know base image {reference!r}; add what it provides to "
        "tests/twin/images.py BASE_IMAGES"
    )


@dataclass(frozen=True)
class Image:
    """A Dockerfile and its build context, as ``docker build -f DOCKERFILE CONTEXT`` would read them."""

    dockerfile: Path
    context: Path

    @cached_property
    def recipe(self) -> Recipe:
        return parse_dockerfile(self.dockerfile)

    @cached_property
    def base(self) -> BaseImage:
        return base_image(self.recipe.base, self.dockerfile)


class ImageRegistry:
    """Image URI -> Image -> the venv that runs it. ``register`` one URI; ``register_cdk_assets`` every
    Docker image asset of a synthesized app; ``serve_lmi_with`` names the image whose server stands in for
    AWS's LMI images; ``runtime`` builds (or finds) an image's venvs, ``prepare`` all of them at once."""

    def __init__(self, venvs: VenvBuilder) -> None:
        self.venvs = venvs
        self._images: dict[str, Image] = {}
        self._by_tag: dict[str, Image] = {}
        self._lmi: Image | None = None

    def register(self, uri: str, dockerfile: Path, context: Path | None = None) -> Image:
        """``context`` defaults to the repository root when the Dockerfile lives in it (our images' build
        context), else the Dockerfile's folder."""
        dockerfile = dockerfile.resolve()
        if context is None:
            context = next((p for p in dockerfile.parents if (p / "pyproject.toml").is_file()), dockerfile.parent)
        image = Image(dockerfile, context.resolve())
        image.base  # noqa: B018 - an unknown base image is refused at registration, not when a job starts
        self._images[uri] = image
        return image

    def serve_lmi_with(self, uri: str) -> None:
        self._lmi = self.resolve(uri)

    def register_cdk_assets(self, cdk_out: Path, account: str, region: str) -> dict[str, Image]:
        """Every ``dockerImages`` entry of ``cdk.out/*.assets.json``: the asset's staged folder is the build
        context and its ``dockerFile`` the Dockerfile. Registered under each destination's URI
        (``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG``) and, for templates whose URI the test
        renders itself, under the image tag (the asset hash). Returns URI -> Image."""
        registered: dict[str, Image] = {}
        for manifest in sorted(cdk_out.glob("*.assets.json")):
            for asset_hash, asset in json.loads(manifest.read_text()).get("dockerImages", {}).items():
                source = asset["source"]
                context = cdk_out / source["directory"]
                dockerfile = context / source.get("dockerFile", "Dockerfile")
                for destination in asset["destinations"].values():
                    repository = destination["repositoryName"].replace("${AWS::AccountId}", account)
                    repository = repository.replace("${AWS::Region}", region)
                    uri = f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{destination['imageTag']}"
                    registered[uri] = self.register(uri, dockerfile, context)
                    self._by_tag[destination["imageTag"]] = registered[uri]
                self._by_tag.setdefault(asset_hash, registered[uri])
        return registered

    def resolve(self, uri: str) -> Image:
        if uri in self._images:
            return self._images[uri]
        tag = uri.rsplit(":", 1)[-1] if ":" in uri.rsplit("/", 1)[-1] else ""
        if tag in self._by_tag:
            return self._by_tag[tag]
        if LMI_IMAGE.search(uri):
            if self._lmi is None:
                raise LookupError(f"{uri}: an LMI image, and no image was named to stand in (serve_lmi_with)")
            return self._lmi
        raise LookupError(f"{uri}: no image registered with the twin (known: {', '.join(sorted(self._images))})")

    def images(self) -> list[Image]:
        return list(dict.fromkeys([*self._images.values(), *self._by_tag.values()]))

    def runtime(self, uri: str) -> Runtime | FrameworkRuntime:
        framework = FRAMEWORK_IMAGE.search(uri)
        if framework is not None and uri not in self._images:
            name = framework.group("framework")
            return FrameworkRuntime(name, cached_venv(self.venvs.cache, FRAMEWORKS[name].local_packages)[0])
        return self.venvs.runtime(self.resolve(uri), self.images())

    def prepare(self) -> dict[str, float]:
        """Build every registered image's venvs now (not in the first job that needs one); returns the
        seconds each build took (0.0: cached)."""
        for image in self.images():
            self.venvs.runtime(image, self.images())
        return dict(self.venvs.timings)

    def is_lmi(self, uri: str) -> bool:
        return uri not in self._images and bool(LMI_IMAGE.search(uri))
