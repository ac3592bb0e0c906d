"""Whether this CPU runs bf16 matrix multiplies natively, which decides ``precision: auto`` on a CPU.

CPUs with AVX512-BF16 (``avx512_bf16``: dot products of bf16 pairs) or AMX (``amx_bf16``: bf16 tile
multiplies) run oneDNN's bf16 matmuls several times faster than fp32 ones; on every other CPU bf16 is
converted in software and runs slower than fp32. The kernel lists the instruction sets the CPU and the
hypervisor expose in the ``flags`` line of /proc/cpuinfo, which is what a container on an EC2 or SageMaker
instance sees. Where there is no such line (not Linux, or a restricted /proc), torch's own CPUID probe is
the fallback source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Bf16Support:
    native: bool
    reason: str


def cpuinfo_flags(path: Path) -> frozenset[str] | None:
    """The instruction-set flags of the first CPU listed in ``path``; None where it has no flags line."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def torch_flags() -> frozenset[str]:
    """The same flags from torch's CPUID probe (``torch.cpu``; AMX tiles stand for AMX-BF16, which every CPU
    with AMX has). Private helpers: a torch without them reports nothing, which selects fp32."""
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    found = set()
    for flag, name in probes.items():
        probe: Callable[[], bool] | None = getattr(torch.cpu, name, None)
        if probe is not None and probe():
            found.add(flag)
    return frozenset(found)


def native_bf16() -> Bf16Support:
    """Whether bf16 autocast pays off on this CPU, and why (the reason is logged when training starts)."""
    flags = cpuinfo_flags(CPUINFO)
    source = str(CPUINFO)
    if flags is None:
        flags, source = torch_flags(), "torch's CPU probe"
    present = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
    if present:
        return Bf16Support(True, f"{', '.join(present)} in {source}: bf16 matrix multiplies run natively")
    return Bf16Support(
        False, f"no {' or '.join(NATIVE_BF16_FLAGS)} in {source}: bf16 would be emulated, slower than fp32"
    )
