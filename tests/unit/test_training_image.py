"""The training images install the entry points the code defines (the images are not built in CI)."""

from __future__ import annotations

import importlib
import re
import tomllib

import pytest

from tests.conftest import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", ["trainforge-train", "trainforge-evaluate"])
def test_console_scripts_resolve(name):
    module, function = SCRIPTS[name].split(":")
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize(("dockerfile", "extra"), [("Dockerfile", "serve"), ("Dockerfile.neuron", "train-core")])
def test_images_install_the_library_and_use_its_entrypoint(dockerfile, extra):
    text = (ROOT / "training_image" / dockerfile).read_text()
    assert re.search(rf'pip install "\.\[{extra}\]"', text)
    assert 'ENTRYPOINT ["trainforge-train"]' in text
    assert "COPY src ./src" in text and "COPY pyproject.toml" in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("transformers") for dep in extras["train-core"])
    if extra == "train-core":  # the Neuron DLC's own torch must survive the install
        assert not any(dep.startswith("torch") for dep in extras["train-core"])
    else:
        assert "torch==2.13.0" in extras["train"]
