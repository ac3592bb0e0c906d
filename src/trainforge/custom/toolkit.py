"""What the SageMaker training toolkit in AWS's framework containers does when the container starts (its
``train`` command), for a machine without those containers: unpack the submitted source into the code
folder and start ``python ENTRY_POINT --name value ...`` there with the ``SM_*`` variables
(https://github.com/aws/sagemaker-training-toolkit). The local runner and the SageMaker twin's stand-in for
the framework containers both go through these functions, so the two start a script the same way.

Run as ``python -m trainforge.custom.toolkit --python PYTHON [--opt-ml ROOT] [train]``: ``PYTHON`` is the
interpreter of the framework's environment, ``ROOT`` the /opt/ml tree (default ``$TRAINFORGE_OPT_ML``, else
``/opt/ml``). It does not install ``requirements.txt``: locally the script's environment already holds its
requirements (:func:`trainforge.custom.runner.script_venv`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from trainforge.custom.script_mode import PROGRAM, SUBMIT_DIRECTORY, arguments, decoded, toolkit_environment
from trainforge.custom.source import unpack_source

OPT_ML = PurePosixPath("/opt/ml")


def submitted_archive(root: Path, hyperparameters: Mapping[str, str]) -> Path:
    """``sagemaker_submit_directory``: a path in the container's /opt/ml, here under ``root``."""
    return root / PurePosixPath(str(decoded(hyperparameters)[SUBMIT_DIRECTORY])).relative_to(OPT_ML)


def install_source(root: Path, hyperparameters: Mapping[str, str]) -> tuple[Path, str]:
    """Unpack the submitted source into a fresh ``root/code``; returns it and the entry point."""
    code = root / "code"
    shutil.rmtree(code, ignore_errors=True)
    unpack_source(submitted_archive(root, hyperparameters).read_bytes(), code)
    return code, str(decoded(hyperparameters)[PROGRAM])


def script_process(
    python: Path, root: Path, code: Path, entry_point: str, hyperparameters: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The script's command line and the ``SM_*`` variables it starts with; the channels are the folders
    under ``root/input/data``."""
    data = root / "input" / "data"
    channels = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
    return [str(python), entry_point, *arguments(hyperparameters)], toolkit_environment(
        root, code, hyperparameters, channels
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", type=Path, required=True)
    parser.add_argument("--opt-ml", type=Path, default=Path(os.environ.get("TRAINFORGE_OPT_ML", str(OPT_ML))))
    parser.add_argument("command", nargs="?", default="train", choices=["train"])
    args = parser.parse_args(argv)
    hyperparameters = json.loads((args.opt_ml / "input" / "config" / "hyperparameters.json").read_text())
    code, entry_point = install_source(args.opt_ml, hyperparameters)
    command, environment = script_process(args.python, args.opt_ml, code, entry_point, hyperparameters)
    return subprocess.call(command, cwd=code, env={**os.environ, **environment})


if __name__ == "__main__":
    sys.exit(main())
