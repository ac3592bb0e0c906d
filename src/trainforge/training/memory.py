"""How much memory a training process has, and how much it used: the facts the run fits its settings to
(:func:`trainforge.planning.fit_to_memory`) and reports in its metrics.

- Capacity: on a CPU the host memory this process may still grow into: its own resident set plus what the
  kernel reports available (``MemAvailable``), capped by the cgroup's limit when the process runs in one
  (a container: SageMaker's, Docker's); on a GPU the device's memory; on Neuron the device's, as torch-xla
  reports it.
- Peaks: on a CPU the process's resident-set high-water mark (``VmHWM``), reset after each reading
  through ``/proc/self/clear_refs``; on a GPU torch's peak of allocated memory, reset likewise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainforge.planning import MemoryFit, ModelShape, UnknownArchitecture, fit_to_memory
from trainforge.planning.memory import MiB
from trainforge.training.config import TrainConfig
from trainforge.training.devices import Device
from trainforge.training.distributed import World

_UNLIMITED = 1 << 60  # cgroup v1 writes a huge number for "no limit"


@dataclass(frozen=True)
class Capacity:
    bytes: int
    #: where the figure comes from, for the log line
    source: str


def _meminfo(proc: Path) -> dict[str, int]:
    values = {}
    for line in (proc / "meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values


def _status_bytes(proc: Path, field: str) -> int:
    for line in (proc / "self" / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _cgroup_room(cgroup: Path) -> tuple[int, int] | None:
    """(limit, usage) of this process's memory cgroup, or None when it has no limit (v2, then v1 files)."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            limit = (cgroup / limit_file).read_text().strip()
            usage = int((cgroup / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= _UNLIMITED:
            return None
        return int(limit), usage
    return None


def host_capacity(processes: int = 1, proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> Capacity:
    """``processes``: how many training processes share the host (each gets an equal part of the room left)."""
    own = _status_bytes(proc, "VmRSS")
    info = _meminfo(proc)
    room, source = info["MemAvailable"], "MemAvailable"
    limited = _cgroup_room(cgroup)
    if limited is not None and limited[0] - limited[1] < room:
        room, source = limited[0] - limited[1], f"cgroup limit {limited[0] / (1 << 30):.2f} GiB"
    total = min(info["MemTotal"], limited[0] if limited else info["MemTotal"])
    share = f" / {processes} processes" if processes > 1 else ""
    return Capacity(
        min(own + room // processes, total),
        f"host: this process's RSS + {source}{share} (of {total / (1 << 30):.2f} GiB)",
    )


def device_capacity(device: Device, processes: int = 1) -> Capacity | None:
    """What one training process may use of its device; None where it cannot be read. ``processes``: how many
    training processes run on this host (they share its memory when they train on the CPU)."""
    if device.kind == "cpu":
        return host_capacity(processes)
    if device.kind == "cuda":
        free, total = torch.cuda.mem_get_info(device.torch_device)
        return Capacity(
            total, f"cuda: {torch.cuda.get_device_name(device.torch_device)}, {free / (1 << 30):.2f} GiB free"
        )
    try:
        import torch_xla.core.xla_model as xm  # type: ignore[import-not-found]

        info: dict[str, Any] = xm.get_memory_info(device.torch_device)
        return Capacity(int(info["bytes_limit"]), "neuron: torch-xla memory info")
    except (ImportError, KeyError, RuntimeError):
        return None


class PeakMemory:
    """Peak memory, in bytes: the process's RSS on a CPU, allocated device memory on a GPU; None where neither
    can be read (Neuron). ``step()`` is the peak since the previous step, ``interval()`` since the previous
    interval (an evaluation), ``run`` since the tracker started."""

    def __init__(self, device: Device, proc: Path = Path("/proc")) -> None:
        self.device = device
        self.proc = proc
        self.resettable = True
        self.run: int | None = None
        self._interval: int | None = None
        self._read()

    def _read(self) -> int | None:
        if self.device.kind == "cuda":
            peak = int(torch.cuda.max_memory_allocated(self.device.torch_device))
            torch.cuda.reset_peak_memory_stats(self.device.torch_device)
        elif self.device.kind == "cpu":
            peak = _status_bytes(self.proc, "VmHWM")
            if self.resettable:
                try:  # "5" resets the high-water mark to the current RSS (proc(5), since Linux 4.0)
                    (self.proc / "self" / "clear_refs").write_text("5")
                except OSError:  # a read-only /proc: every reading is the peak since the process started
                    self.resettable = False
        else:
            return None
        self.run = max(self.run or 0, peak)
        self._interval = max(self._interval or 0, peak)
        return peak

    def step(self) -> int | None:
        return self._read()

    def interval(self) -> int | None:
        self._read()
        peak, self._interval = self._interval, None
        return peak


def model_shape(base_dir: Path) -> ModelShape:
    return ModelShape.from_config(json.loads((base_dir / "config.json").read_text()))


def fit_to_device(
    config: TrainConfig, base_dir: Path, device: Device, world: World
) -> tuple[MemoryFit[TrainConfig] | None, dict[str, Any]]:
    """The settings this process trains with, fitted to its device's memory, and the facts to log and
    record in the model's lineage. No fit (None) where the architecture or the device's memory is unknown:
    the facts say why. Every rank decides from the smallest capacity of any rank, so all take the same
    settings; processes that share a host's memory share its capacity."""
    try:
        shape = model_shape(base_dir)
    except UnknownArchitecture as exc:
        return None, {"device": device.kind, "estimate_mb": None, "reason": str(exc)}
    capacity = device_capacity(device, processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if capacity is None:
        return None, {"device": device.kind, "estimate_mb": None, "reason": f"the {device.kind} memory is unknown"}
    fit = fit_to_memory(
        shape,
        config,
        config.method,
        device=device.kind,  # type: ignore[arg-type]
        bf16=device.bf16,
        capacity=world.min(capacity.bytes),
        world_size=world.size,
    )
    facts = {
        "device": device.kind,
        "capacity_mb": _mb(fit.capacity),
        "capacity_source": capacity.source,
        "budget_mb": _mb(fit.budget),
        "estimate_mb": _mb(fit.estimate.total),
        "estimate_parts_mb": {name: _mb(value) for name, value in fit.estimate.parts.items()},
        "requested": {
            "batch_size": config.batch_size,
            "grad_accum": config.grad_accum,
            "gradient_checkpointing": config.gradient_checkpointing,
            "estimate_mb": _mb(fit.requested_estimate.total),
        },
        "adjustments": [adjustment.record() for adjustment in fit.adjustments],
    }
    return fit, facts


def _mb(value: int) -> int:
    return round(value / MiB)
