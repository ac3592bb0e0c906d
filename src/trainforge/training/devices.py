"""Devices: cpu, cuda, and AWS Trainium/Inferentia (``neuron``), and the precision a job trains in.

Neuron support comes from torch-neuronx/torch-xla, which exist only in AWS's Neuron images (PyPI has a
placeholder), so they are imported only when a Neuron host is detected. On Neuron the loop runs on the
XLA device: ``mark_step`` after each optimizer step compiles and executes the traced graph.

``precision: auto`` is bf16 autocast on GPUs and Neuron, and on a CPU where bf16 matrix multiplies run
natively (AVX512-BF16 or AMX, :mod:`trainforge.training.cpu_features`); fp32 on other CPUs, where bf16 is
emulated and slower than fp32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainforge.errors import DeviceUnavailable
from trainforge.training.cpu_features import native_bf16


def neuron_available() -> bool:
    return Path("/opt/aws/neuron").exists() or bool(os.environ.get("NEURON_RT_VISIBLE_CORES"))


@dataclass(frozen=True)
class Device:
    kind: str
    torch_device: Any
    bf16: bool
    #: why the job trains in bf16 or fp32, logged when training starts
    precision_reason: str = ""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype :meth:`autocast` runs in, None where it does not run (fp32; Neuron, whose bf16 is set
        globally through XLA_USE_BF16 before the model is built)."""
        return torch.bfloat16 if self.bf16 and self.kind in ("cuda", "cpu") else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        dtype = self.autocast_dtype
        if dtype is not None:
            with torch.autocast(self.kind, dtype=dtype):
                yield
        else:
            yield

    def mark_step(self) -> None:
        if self.kind == "neuron":
            import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]

            xm.mark_step()

    def synchronize(self) -> None:
        if self.kind == "cuda":
            torch.cuda.synchronize()


def require(kind: str) -> None:
    """A job placed on an accelerator by its instance type must find it: silently training on the host CPU
    of a Trainium or GPU instance would bill accelerator hours for a run a hundred times slower."""
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            "device 'cuda' was requested (a GPU instance type) but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})"
        )
    if kind == "neuron":
        if not neuron_available():
            raise DeviceUnavailable(
                "device 'neuron' was requested (a Trainium instance type) but no Neuron device is present "
                "(/opt/aws/neuron missing and NEURON_RT_VISIBLE_CORES unset)"
            )
        try:
            import torch_xla  # type: ignore[import-not-found]  # noqa: F401
        except ImportError as exc:
            raise DeviceUnavailable(
                "a Neuron device is present but torch-xla/torch-neuronx are not installed: the job must run the "
                f"Neuron image (training_image/Dockerfile.neuron), not the CUDA one ({exc})"
            ) from exc


def bf16_precision(kind: str, precision: str) -> tuple[bool, str]:
    """Whether a job on ``kind`` trains under bf16 autocast, and why."""
    if precision != "auto":
        return precision == "bf16", f"precision {precision} was requested"
    if kind == "neuron":
        return True, "precision auto on neuron: bf16"
    if kind == "cuda":
        # Ampere and later run bf16 in hardware; on a T4 or V100 (ml.g4dn, ml.p3) it is emulated: fp32 there
        native = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        return native, f"precision auto on cuda: {'bf16' if native else 'fp32, this GPU has no native bf16'}"
    support = native_bf16()
    return support.native, f"precision auto on cpu: {'bf16' if support.native else 'fp32'}, {support.reason}"


def select_device(requested: str, precision: str, local_rank: int = 0) -> Device:
    kind = requested
    if kind == "auto":
        kind = "neuron" if neuron_available() else "cuda" if torch.cuda.is_available() else "cpu"
    require(kind)
    bf16, reason = bf16_precision(kind, precision)
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        return Device(kind, torch.device("cuda", local_rank), bf16, reason)
    if kind == "neuron":
        if bf16:
            os.environ.setdefault("XLA_USE_BF16", "1")
        import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]

        return Device(kind, xm.xla_device(), bf16, reason)
    return Device("cpu", torch.device("cpu"), bf16, reason)
