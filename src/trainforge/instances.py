"""SageMaker ML instance types: the one table of hardware facts the pipeline decides from.

Which image a job runs (CUDA or Neuron), how many training processes each node starts, whether the
request may carry a volume KMS key (types with local NVMe storage refuse one), how much accelerator memory
a plan may count on, and which evaluation instance fits a model all read this table; nothing else keeps
its own list of instance types. No torch: the Lambdas and ``trainforge plan`` use it.

Sources (checked 2026-11): the SageMaker AI pricing page's instance details (vCPU, memory, accelerators),
the EC2 accelerated-computing instance specifications (accelerator memory), the EC2 "Instance store
volumes" list (which types have local NVMe storage), and the AWS Neuron documentation (NeuronCores per
Trainium instance: trn1 has 2 per chip; trn2 exposes 4 logical cores per chip at its default logical
NeuronCore size of 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from trainforge.errors import SpecInvalid

Accelerator = Literal["cuda", "neuron", "cpu"]


@dataclass(frozen=True)
class InstanceType:
    name: str
    accelerator: Accelerator
    #: GPUs, or Trainium chips; 0 on CPU types
    accelerators: int
    #: memory of one GPU or Trainium chip, GiB; 0 on CPU types
    accelerator_memory_gib: float
    vcpus: int
    memory_gib: float
    #: local NVMe instance storage, GiB (0: EBS only). SageMaker refuses a VolumeKmsKeyId / KmsKeyId for
    #: these types and a VolumeSizeInGB above this size
    nvme_gib: int
    #: the accelerator's model, for people and for the throughput table
    device_name: str = ""
    #: NeuronCores a training process can own (one process each); 0 elsewhere
    neuron_cores: int = 0

    @property
    def local_nvme(self) -> bool:
        return self.nvme_gib > 0

    @property
    def family(self) -> str:
        """``ml.g5.2xlarge`` -> ``g5``."""
        return self.name.split(".")[1]

    @property
    def processes_per_node(self) -> int:
        """Training processes the entry point starts on one node: one per GPU or NeuronCore, else one."""
        if self.accelerator == "neuron":
            return self.neuron_cores
        return max(1, self.accelerators)

    @property
    def total_accelerator_memory_gib(self) -> float:
        return self.accelerators * self.accelerator_memory_gib

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware: Ampere and later GPUs and Trainium; not the T4 or the V100."""
        return self.accelerator == "neuron" or (self.accelerator == "cuda" and self.device_name not in _NO_BF16)


#: GPUs before Ampere: bf16 only emulated
_NO_BF16 = frozenset({"NVIDIA T4", "NVIDIA V100"})


def _family(
    family: str,
    accelerator: Accelerator,
    device_name: str,
    accelerator_memory_gib: float,
    sizes: Mapping[str, tuple[int, int, float, int]],
    neuron_cores_per_chip: int = 0,
) -> list[InstanceType]:
    """``sizes``: size -> (accelerators, vCPUs, memory GiB, local NVMe GiB)."""
    return [
        InstanceType(
            name=f"ml.{family}.{size}",
            accelerator=accelerator,
            accelerators=count,
            accelerator_memory_gib=accelerator_memory_gib if count else 0.0,
            vcpus=vcpus,
            memory_gib=memory,
            nvme_gib=nvme,
            device_name=device_name,
            neuron_cores=count * neuron_cores_per_chip,
        )
        for size, (count, vcpus, memory, nvme) in sizes.items()
    ]


_G5_SIZES = {
    "xlarge": (1, 4, 16, 250),
    "2xlarge": (1, 8, 32, 450),
    "4xlarge": (1, 16, 64, 600),
    "8xlarge": (1, 32, 128, 900),
    "12xlarge": (4, 48, 192, 3800),
    "16xlarge": (1, 64, 256, 1900),
    "24xlarge": (4, 96, 384, 3800),
    "48xlarge": (8, 192, 768, 7600),
}
_G6_SIZES = {
    "xlarge": (1, 4, 16, 250),
    "2xlarge": (1, 8, 32, 450),
    "4xlarge": (1, 16, 64, 600),
    "8xlarge": (1, 32, 128, 900),
    "12xlarge": (4, 48, 192, 3760),
    "16xlarge": (1, 64, 256, 1880),
    "24xlarge": (4, 96, 384, 3760),
    "48xlarge": (8, 192, 768, 7520),
}
_G6E_SIZES = {
    "xlarge": (1, 4, 32, 250),
    "2xlarge": (1, 8, 64, 450),
    "4xlarge": (1, 16, 128, 600),
    "8xlarge": (1, 32, 256, 900),
    "12xlarge": (4, 48, 384, 3800),
    "16xlarge": (1, 64, 512, 1900),
    "24xlarge": (4, 96, 768, 3800),
    "48xlarge": (8, 192, 1536, 7600),
}
_M5_SIZES = {
    "large": (0, 2, 8, 0),
    "xlarge": (0, 4, 16, 0),
    "2xlarge": (0, 8, 32, 0),
    "4xlarge": (0, 16, 64, 0),
    "12xlarge": (0, 48, 192, 0),
    "24xlarge": (0, 96, 384, 0),
}
_C5_SIZES = {
    "xlarge": (0, 4, 8, 0),
    "2xlarge": (0, 8, 16, 0),
    "4xlarge": (0, 16, 32, 0),
    "9xlarge": (0, 36, 72, 0),
    "18xlarge": (0, 72, 144, 0),
}
_G4DN_SIZES = {
    "xlarge": (1, 4, 16, 125),
    "2xlarge": (1, 8, 32, 225),
    "4xlarge": (1, 16, 64, 225),
    "8xlarge": (1, 32, 128, 900),
    "12xlarge": (4, 48, 192, 900),
    "16xlarge": (1, 64, 256, 900),
}

INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in [
        *_family("m5", "cpu", "", 0, _M5_SIZES),
        *_family("c5", "cpu", "", 0, _C5_SIZES),
        *_family("g4dn", "cuda", "NVIDIA T4", 16, _G4DN_SIZES),
        *_family("g5", "cuda", "NVIDIA A10G", 24, _G5_SIZES),
        *_family("g6", "cuda", "NVIDIA L4", 24, _G6_SIZES),
        *_family("g6e", "cuda", "NVIDIA L40S", 48, _G6E_SIZES),
        *_family(
            "p3",
            "cuda",
            "NVIDIA V100",
            16,
            {"2xlarge": (1, 8, 61, 0), "8xlarge": (4, 32, 244, 0), "16xlarge": (8, 64, 488, 0)},
        ),
        *_family("p3dn", "cuda", "NVIDIA V100", 32, {"24xlarge": (8, 96, 768, 1800)}),
        *_family("p4d", "cuda", "NVIDIA A100", 40, {"24xlarge": (8, 96, 1152, 8000)}),
        *_family("p4de", "cuda", "NVIDIA A100", 80, {"24xlarge": (8, 96, 1152, 8000)}),
        *_family("p5", "cuda", "NVIDIA H100", 80, {"48xlarge": (8, 192, 2048, 30400)}),
        *_family("p5e", "cuda", "NVIDIA H200", 141, {"48xlarge": (8, 192, 2048, 30400)}),
        *_family("p5en", "cuda", "NVIDIA H200", 141, {"48xlarge": (8, 192, 2048, 30400)}),
        *_family(
            "trn1",
            "neuron",
            "AWS Trainium",
            32,
            {"2xlarge": (1, 8, 32, 474), "32xlarge": (16, 128, 512, 7600)},
            neuron_cores_per_chip=2,
        ),
        *_family("trn1n", "neuron", "AWS Trainium", 32, {"32xlarge": (16, 128, 512, 7600)}, neuron_cores_per_chip=2),
        *_family("trn2", "neuron", "AWS Trainium2", 96, {"48xlarge": (16, 192, 2048, 7600)}, neuron_cores_per_chip=4),
    ]
}


def instance_type(name: str) -> InstanceType:
    """The facts of one type, or SpecInvalid naming the known ones (a typo must not reach SageMaker)."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        families = sorted({t.family for t in INSTANCE_TYPES.values()})
        raise SpecInvalid(
            f"unknown SageMaker instance type '{name}'; known families: {', '.join(families)} "
            "(trainforge.instances lists every size)"
        ) from None


def nvme_type_patterns() -> list[str]:
    """IAM ``sagemaker:InstanceTypes`` patterns of the families with local NVMe storage."""
    return sorted({f"ml.{t.family}.*" for t in INSTANCE_TYPES.values() if t.local_nvme})


def ebs_only_type_patterns() -> list[str]:
    """IAM ``sagemaker:InstanceTypes`` patterns of the families whose storage is EBS only."""
    return sorted({f"ml.{t.family}.*" for t in INSTANCE_TYPES.values() if not t.local_nvme})


def smallest_fitting(accelerator_memory_gib: float, *, bf16: bool = True) -> InstanceType:
    """The smallest single-GPU type (least accelerator memory, then host memory) whose GPU holds
    ``accelerator_memory_gib``, with native bf16 unless ``bf16`` is False; for sizing the evaluation job,
    which runs one process on one device."""
    candidates = [
        t
        for t in INSTANCE_TYPES.values()
        if t.accelerator == "cuda"
        and t.accelerators == 1
        and t.accelerator_memory_gib >= accelerator_memory_gib
        and (t.native_bf16 or not bf16)
    ]
    if not candidates:
        raise SpecInvalid(f"no single-GPU instance type has {accelerator_memory_gib:.0f} GiB of GPU memory")
    return min(candidates, key=lambda t: (t.accelerator_memory_gib, t.memory_gib, t.vcpus))
