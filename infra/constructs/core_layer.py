"""The shared Lambda layer: TrainForge's core package (no torch) and its dependencies, installed by a local
``pip install --target`` for the Lambda platform. No Docker: CDK calls ``try_bundle`` at synth time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_14


@jsii.implements(ILocalBundling)
class PipInstall:
    """pip, not Docker: manylinux wheels for the Lambda runtime, into the layer's python/ folder."""

    def __init__(self, python_version: str = "3.14") -> None:
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-cache-dir",
            "--target",
            str(Path(output_dir) / "python"),
            # Lambda's Python 3.14 runtime is Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
            "--upgrade",
            str(REPO_ROOT),
        ]
        # the C loops (setup.py) would be built for this machine's Python, not the runtime's: the layer runs
        # their pure-Python twins
        subprocess.run(command, check=True, env={**os.environ, "TRAINFORGE_PURE_PYTHON": "1"})
        return True


class CoreLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(
            str(REPO_ROOT / "src"),  # the asset hash follows the library's source
            bundling=BundlingOptions(image=RUNTIME.bundling_image, local=PipInstall(), command=["false"]),
        )
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=code,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="TrainForge core library",
        )
