"""SageMaker's script-mode contract, in one place: what the request carries and what the framework
container's toolkit makes of it before the user's script starts.

In AWS the request carries the script's hyperparameters as JSON strings plus ``sagemaker_program`` (the
entry point) and ``sagemaker_submit_directory`` (the packed source in S3); AWS's framework containers run
the SageMaker training toolkit, which unpacks the source into ``/opt/ml/code``, installs its
``requirements.txt`` with pip, and runs ``python ENTRY_POINT --name value ...`` with the ``SM_*`` variables
(https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md,
https://docs.aws.amazon.com/sagemaker/latest/dg/adapt-training-container.html). Locally
:mod:`trainforge.custom.runner` does those steps itself from the same request, through the functions here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

#: hyperparameters the toolkit reads for itself and does not pass to the script
PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
REGION = "sagemaker_region"
#: where the toolkit unpacks the source (its ``code_dir``)
CODE_DIR = "/opt/ml/code"
#: the source reaches the job as an input channel, not as an S3 URI the toolkit downloads: the job runs with
#: network isolation, whose containers reach nothing outside, S3 included
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/mkt-algo-model-internet-free.html). The SageMaker Python
#: SDK does the same for isolated jobs (``CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH``), and the toolkit unpacks
#: a local ``sagemaker_submit_directory`` without downloading it.
CODE_CHANNEL = "code"
ARCHIVE_NAME = "sourcedir.tar.gz"
SUBMITTED_ARCHIVE = f"/opt/ml/input/data/{CODE_CHANNEL}/{ARCHIVE_NAME}"
#: the folder of wheels inside the source that pip installs from in a job without internet
WHEELHOUSE = "wheelhouse"
#: the one requirements file the toolkit installs: ``requirements.txt`` at the root of ``code_dir`` and no
#: other (``has_requirements`` in
#: https://github.com/aws/sagemaker-training-toolkit/blob/master/src/sagemaker_training/modules.py)
REQUIREMENTS = "requirements.txt"
#: what the contract asks of the script, as a failure names it when a script that exited 0 did not do it
#: (pipeline/triage.py hints on these words): a model in SM_MODEL_DIR, and its metrics as JSON lines
NO_MODEL = "wrote nothing to SM_MODEL_DIR (/opt/ml/model)"
NO_METRICS = "printed no metric line"


def request_hyperparameters(
    script: Mapping[str, str | int | float | bool], entry_point: str, region: str
) -> dict[str, str]:
    """CreateTrainingJob's HyperParameters for script mode: every value JSON-encoded, as the SageMaker
    Python SDK sends them (the toolkit decodes them again); the source is the code channel's archive."""
    values: dict[str, object] = {
        **script,
        PROGRAM: entry_point,
        SUBMIT_DIRECTORY: SUBMITTED_ARCHIVE,
        REGION: region,
    }
    return {name: json.dumps(value) for name, value in values.items()}


def job_environment(installs_requirements: bool) -> dict[str, str]:
    """The request's Environment for script mode: a job has no internet, so the toolkit's ``pip install -r``
    of the source's :data:`REQUIREMENTS` reads its wheelhouse (pip takes any option from ``PIP_<OPTION>``,
    https://pip.pypa.io/en/stable/topics/configuration/#environment-variables)."""
    if not installs_requirements:
        return {}
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{CODE_DIR}/{WHEELHOUSE}"}


def decoded(hyperparameters: Mapping[str, str]) -> dict[str, object]:
    """hyperparameters.json's strings as the toolkit reads them: JSON where they parse, else the string."""
    values: dict[str, object] = {}
    for name, text in hyperparameters.items():
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return values


def user_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, object]:
    """The script's own names and values: the toolkit's ``sagemaker_*`` ones left out."""
    return {name: value for name, value in decoded(hyperparameters).items() if not name.startswith("sagemaker_")}


def plain_text(value: object) -> str:
    """A value as a script reads it from the command line: a string as it is, anything else its JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def arguments(hyperparameters: Mapping[str, str]) -> list[str]:
    """``--name value`` for each of the script's hyperparameters (the toolkit's ``SM_USER_ARGS``)."""
    pairs = sorted(user_hyperparameters(hyperparameters).items())
    return [part for name, value in pairs for part in (f"--{name}", plain_text(value))]


def toolkit_environment(
    root: Path, code: Path, hyperparameters: Mapping[str, str], channels: list[str], num_gpus: int = 0
) -> dict[str, str]:
    """The ``SM_*`` variables the toolkit sets for the script, over the /opt/ml tree at ``root``."""
    users = user_hyperparameters(hyperparameters)
    entry_point = str(decoded(hyperparameters).get(PROGRAM, ""))
    environment = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(users),
        "SM_USER_ARGS": json.dumps(arguments(hyperparameters)),
        "SM_USER_ENTRY_POINT": entry_point,
        "SM_MODULE_DIR": str(code),
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_NUM_GPUS": str(num_gpus),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_LOG_LEVEL": "20",
    }
    environment |= {f"SM_CHANNEL_{name.upper()}": str(root / "input" / "data" / name) for name in channels}
    environment |= {f"SM_HP_{name.upper()}": plain_text(value) for name, value in users.items()}
    return environment
