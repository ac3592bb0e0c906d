"""Image URIs to Dockerfiles: registered, from a CDK asset manifest, and AWS's LMI images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.twin.images import ImageRegistry
from tests.twin.venvs import VenvBuilder

DOCKERFILE = 'FROM nvidia/cuda:12.8.1-runtime\nWORKDIR /w\nCOPY pyproject.toml ./\nRUN pip install ".[serve]"\nENTRYPOINT ["serve-it"]\n'
LMI = "763104351884.dkr.ecr.us-west-2.amazonaws.com/djl-inference:0.33.0-lmi15.0.0-cu128"


@pytest.fixture
def registry(tmp_path: Path) -> ImageRegistry:
    return ImageRegistry(VenvBuilder(tmp_path / "cache", tmp_path / "session"))


def context(folder: Path, dockerfile: str = DOCKERFILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')
    (folder / "Dockerfile").write_text(dockerfile)
    return folder / "Dockerfile"


def test_a_registered_uri_resolves_to_its_dockerfile_and_context(registry, tmp_path):
    dockerfile = context(tmp_path / "repo")
    registry.register("acct.dkr.ecr.us-east-1.amazonaws.com/app:1", dockerfile)

    image = registry.resolve("acct.dkr.ecr.us-east-1.amazonaws.com/app:1")

    assert (image.dockerfile, image.context) == (dockerfile.resolve(), (tmp_path / "repo").resolve())
    with pytest.raises(LookupError, match="no image registered"):
        registry.resolve("acct.dkr.ecr.us-east-1.amazonaws.com/other:1")


def test_an_unknown_base_image_is_refused_at_registration(registry, tmp_path):
    dockerfile = context(tmp_path / "repo", DOCKERFILE.replace("nvidia/cuda:12.8.1-runtime", "python:3.12-slim"))

    with pytest.raises(LookupError, match=r"does not know base image 'python:3\.12-slim'"):
        registry.register("app:1", dockerfile)


def test_lmi_images_are_served_by_the_named_stand_in(registry, tmp_path):
    registry.register("app:gpu", context(tmp_path / "repo"))
    with pytest.raises(LookupError, match="LMI image"):
        registry.resolve(LMI)

    registry.serve_lmi_with("app:gpu")

    assert registry.resolve(LMI) is registry.resolve("app:gpu")
    assert registry.is_lmi(LMI) and not registry.is_lmi("app:gpu")


def test_cdk_asset_manifests_register_every_docker_image_asset(registry, tmp_path):
    cdk_out = tmp_path / "cdk.out"
    (cdk_out / "asset.abc123" / "training_image").mkdir(parents=True)  # the staged build context
    (cdk_out / "asset.abc123" / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')
    (cdk_out / "asset.abc123" / "training_image" / "Dockerfile").write_text(DOCKERFILE)
    manifest = {
        "version": "48.0.0",
        "files": {},
        "dockerImages": {
            "abc123": {
                "source": {"directory": "asset.abc123", "dockerFile": "training_image/Dockerfile"},
                "destinations": {
                    "current_account-current_region": {
                        "repositoryName": "cdk-hnb659fds-container-assets-${AWS::AccountId}-${AWS::Region}",
                        "imageTag": "abc123",
                    }
                },
            }
        },
    }
    (cdk_out / "Training.assets.json").write_text(json.dumps(manifest))

    registered = registry.register_cdk_assets(cdk_out, "111122223333", "eu-west-1")

    uri = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/cdk-hnb659fds-container-assets-111122223333-eu-west-1:abc123"
    assert list(registered) == [uri]
    assert registry.resolve(uri).context == (cdk_out / "asset.abc123").resolve()
    assert registry.resolve("999.dkr.ecr.us-east-1.amazonaws.com/rendered-by-the-test:abc123") is registered[uri]
