"""Which packages an image's venv holds, and which venv it is layered on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.twin.images import Image
from tests.twin.venvs import image_requirements, layer_below, project_requirements

PYPROJECT = """
[project]
name = "app"
version = "1"
dependencies = ["core-a>=1", "core-b"]

[project.optional-dependencies]
train-core = ["transformers>=4"]
train = ["app[train-core]", "torch==2.13.0"]
serve = ["APP[train]", "fastapi"]
"""


def test_extras_expand_through_self_references(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)

    assert project_requirements(pyproject, ("serve",)) == [
        "core-a>=1",
        "core-b",
        "fastapi",
        "torch==2.13.0",
        "transformers>=4",
    ]
    assert project_requirements(pyproject, ()) == ["core-a>=1", "core-b"]
    with pytest.raises(LookupError, match="no extra 'gpu'"):
        project_requirements(pyproject, ("gpu",))


def image(folder: Path, base: str, extras: str) -> Image:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT)
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(f'FROM {base}\nWORKDIR /w\nCOPY pyproject.toml ./\nRUN pip install ".[{extras}]"\n')
    return Image(dockerfile, folder)


def test_the_neuron_base_brings_torch_where_the_cuda_image_installs_it(tmp_path):
    neuron = image(
        tmp_path / "n", "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training-neuronx:2.8.0", "train-core"
    )
    cuda = image(tmp_path / "c", "nvidia/cuda:12.8.1-runtime", "train")
    cuda_core = image(tmp_path / "k", "nvidia/cuda:12.8.1-runtime", "train-core")

    assert image_requirements(neuron) == image_requirements(cuda)
    assert "torch==2.13.0" not in image_requirements(cuda_core)  # a missing torch stays missing


def test_a_venv_is_layered_on_the_largest_registered_subset():
    core, train, serve, other = frozenset({"a"}), frozenset({"a", "t"}), frozenset({"a", "t", "f"}), frozenset({"z"})

    assert layer_below(serve, {core, train, serve, other}) == train
    assert layer_below(train, {core, train, serve, other}) == core
    assert layer_below(core, {core, train, serve, other}) is None
