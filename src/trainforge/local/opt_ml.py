"""Laying out an ``/opt/ml`` tree the way SageMaker does before it starts a container, so local mode
runs ``trainforge-train`` and ``trainforge-evaluate`` on exactly the contract the cloud uses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink() if not target.is_dir() or target.is_symlink() else shutil.rmtree(target)
    try:
        os.symlink(source.resolve(), target)
    except OSError:  # filesystems without symlinks
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)


def prepare_training_tree(root: Path, channels: dict[str, Path], hyperparameters: dict[str, str]) -> Path:
    """``channels`` maps channel name (train, validation, base_model) to a file or folder."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    (config / "inputdataconfig.json").write_text(
        json.dumps({name: {"ContentType": "application/jsonlines"} for name in channels})
    )
    for name, source in channels.items():
        target = root / "input" / "data" / name
        if source.is_file():
            _link_or_copy(source, target / source.name)
        else:
            _link_or_copy(source, target)
    for folder in ("model", "checkpoints", "output/data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


def prepare_processing_tree(root: Path, inputs: dict[str, Path], config: dict[str, object]) -> Path:
    """``/opt/ml/processing``: each input (model, base_model, data, metrics) under input/NAME, and the
    evaluation config as input/config/evaluation.json."""
    (root / "input" / "config").mkdir(parents=True, exist_ok=True)
    (root / "input" / "config" / "evaluation.json").write_text(json.dumps(config, indent=2, default=str))
    for name, source in inputs.items():
        target = root / "input" / name
        if source.is_file():
            _link_or_copy(source, target / source.name)
        else:
            _link_or_copy(source, target)
    (root / "output").mkdir(parents=True, exist_ok=True)
    return root
