"""Where a plan trains: a SageMaker instance type (from ``trainforge.instances``, the one table of hardware
facts) or this machine (local mode), as the few numbers the estimates need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trainforge.instances import InstanceType
from trainforge.planning.memory import DeviceKind, GiB
from trainforge.spec import Hyperparameters


def cpu_cores(vcpus: int) -> int:
    """Cores of a SageMaker CPU type from its vCPUs: EC2's x86 types run two hardware threads per core, and
    two threads of one core share its vector and matrix units (on a 2-vCPU Xeon a second training thread
    added 0-4% in bf16 and 18% in fp32: docs/planning.md), so a core is the unit a CPU trains at.
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cpu-options-supported-instances-values.html"""
    return max(1, vcpus // 2)


def physical_cores(cpus: Iterable[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> int | None:
    """Cores among these logical CPUs, from the kernel's topology: each CPU's ``thread_siblings_list`` names
    the logical CPUs of its core, so a machine with one thread per core (the 2-core AMD EPYC this was
    written on) counts every CPU and a hyperthreaded one (the 2-vCPU Xeon) counts half. None where the
    kernel does not say (no sysfs): the caller falls back to the EC2 rule.
    https://www.kernel.org/doc/html/latest/admin-guide/cputopology.html"""
    cores = set()
    for cpu in cpus:
        siblings = sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            return None
    return len(cores) or None


@dataclass(frozen=True)
class Machine:
    #: a SageMaker instance type, or "local"
    name: str
    device: DeviceKind
    #: the accelerator's model (the throughput table's key); "cpu" for CPU types
    device_name: str
    #: training processes per node (one per GPU or NeuronCore, else one) and nodes
    processes: int
    nodes: int
    #: bytes one training process may use: a GPU's memory, a NeuronCore's share of its chip, or the host's
    capacity: int
    #: bf16 arithmetic in hardware
    native_bf16: bool
    #: CPU cores (CPU only; a SageMaker type's are two vCPUs each, as EC2 counts them, this machine's are read
    #: from the kernel): the throughput table's CPU rows are per core
    cores: int = 1
    #: accelerators per node (GPUs, Trainium chips); 0 on CPUs
    accelerators: int = 0

    @classmethod
    def from_instance(cls, instance: InstanceType, count: int = 1) -> Machine:
        if instance.accelerator == "neuron":
            per_core = instance.accelerator_memory_gib * instance.accelerators / max(instance.neuron_cores, 1)
            capacity = int(per_core * GiB)
        elif instance.accelerator == "cuda":
            capacity = int(instance.accelerator_memory_gib * GiB)
        else:
            capacity = int(instance.memory_gib * GiB)
        return cls(
            name=instance.name,
            device=instance.accelerator,
            device_name=instance.device_name or "cpu",
            processes=instance.processes_per_node,
            nodes=count,
            capacity=capacity,
            native_bf16=instance.native_bf16,
            cores=cpu_cores(instance.vcpus) if instance.accelerator == "cpu" else 1,
            accelerators=instance.accelerators,
        )

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes

    def bf16(self, hyper: Hyperparameters) -> bool:
        """What the job trains in: ``precision: auto`` is bf16 where the hardware runs it natively
        (``training/devices.py`` decides the same on the machine itself)."""
        if hyper.precision == "auto":
            return self.native_bf16
        return hyper.precision == "bf16"
