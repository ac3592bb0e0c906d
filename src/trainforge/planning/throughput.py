"""How fast each device trains, as FLOP/s achieved per device, with where and when each figure comes from.

A plan's training time is the run's FLOPs (``planning.duration``) over the FLOP/s of the job's devices.
Figures are per device: one GPU, one Trainium chip, or one CPU core. Only the CPU rows are measured by
this project so far; every accelerator row is the maker's dense peak times a model-FLOPs utilisation
(MFU) range, and says so, until ``benchmarks/train_throughput.py`` is run on one (no GPU or Trainium was
lent to this work). A measured row replaces an assumed one in this table, nowhere else.

Generation (the evaluation job's samples) is bound by reading the weights once per token, not by FLOPs:
its rate is a memory bandwidth per device, again measured for the CPU and from data sheets elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

TERA = 1e12


@dataclass(frozen=True)
class Rate:
    #: FLOP/s one device achieves in training, low and high end
    low: float
    high: float
    #: where and when it was measured, or what it assumes
    source: str
    measured: bool = False


#: model-FLOPs utilisation assumed where nothing was measured: what fine-tuning of 0.1-10B models typically
#: reaches with bf16 autocast (below pre-training's 40-55%: shorter sequences, small matrices, LoRA)
ASSUMED_MFU = (0.25, 0.45)
#: each process beyond the first loses this share to gradient all-reduce / FSDP gathers within a node, and
#: this share per extra node (EFA): assumptions, not measured
SCALING_LOSS_IN_NODE, SCALING_LOSS_ACROSS_NODES = 0.05, 0.15


def _assumed(peak_tflops: float, what: str) -> Rate:
    low, high = ASSUMED_MFU
    return Rate(
        low * peak_tflops * TERA,
        high * peak_tflops * TERA,
        f"assumed: {what} dense peak {peak_tflops:g} TFLOP/s (maker's data sheet) x MFU {low:.0%}-{high:.0%}; "
        "not measured by this project",
    )


_CPU_SOURCE = (
    "measured 2026-11-30: benchmarks/train_throughput.py, SmolLM2-135M LoRA r16, 8 packed rows of 128-512 tokens "
    "a step (the quickstart's shape and up), tokens per second of one core (2 vCPUs) with the machine to itself, "
    "on a 2-vCPU Intel Xeon (family 6 model 207, avx512_bf16 and amx_bf16), and the quickstart's own steps "
    "(docs/planning.md); x the model's FLOPs per token"
)

#: (device, trains in bf16) -> FLOP/s per device. Devices are ``InstanceType.device_name`` ("cpu" for CPUs,
#: whose device is a core: ``planning.machines.cpu_cores``).
TRAINING_RATES: dict[tuple[str, bool], Rate] = {
    # x 574 MFLOP per token (planning.duration on SmolLM2): fp32 138-164 tok/s (1-2 threads) at 8 x 128; bf16,
    # since attention runs in fp32 and the frozen base is cast once (training/attention.py, lora.py): 218 tok/s
    # (the quickstart's steps) to 271-334 tok/CPU-s of one thread (8 x 256 to 4 x 1024)
    ("cpu", False): Rate(70e9, 100e9, _CPU_SOURCE, measured=True),
    ("cpu", True): Rate(110e9, 180e9, _CPU_SOURCE, measured=True),
    ("NVIDIA T4", False): _assumed(8.1, "T4 fp32 (no native bf16: precision auto trains in fp32)"),
    ("NVIDIA V100", False): _assumed(15.7, "V100 fp32 (no native bf16)"),
    ("NVIDIA A10G", True): _assumed(125, "A10 bf16 (the A10G is AWS's variant of it)"),
    ("NVIDIA L4", True): _assumed(121, "L4 bf16"),
    ("NVIDIA L40S", True): _assumed(362, "L40S bf16"),
    ("NVIDIA A100", True): _assumed(312, "A100 bf16"),
    ("NVIDIA H100", True): _assumed(989, "H100 SXM bf16"),
    ("NVIDIA H200", True): _assumed(989, "H200 bf16"),
    ("AWS Trainium", True): _assumed(190, "Trainium chip bf16 (2 NeuronCore-v2)"),
    ("AWS Trainium2", True): _assumed(667, "Trainium2 chip bf16"),
}

#: device -> bytes/s of weights read per generated token, for the evaluation job's generation. CPU: the serving
#: benchmark's 9.9 tokens/s of SmolLM2-135M in fp32 (538 MB read per token), 2026-11-25 (docs/benchmarks.md,
#: Serving); elsewhere half the data sheet's memory bandwidth (assumed)
GENERATION_BANDWIDTH: dict[str, float] = {
    "cpu": 5.3e9,
    "NVIDIA T4": 160e9,
    "NVIDIA V100": 450e9,
    "NVIDIA A10G": 300e9,
    "NVIDIA L4": 150e9,
    "NVIDIA L40S": 432e9,
    "NVIDIA A100": 780e9,
    "NVIDIA H100": 1675e9,
    "NVIDIA H200": 2400e9,
    "AWS Trainium": 410e9,
    "AWS Trainium2": 1450e9,
}


def training_rate(device_name: str, bf16: bool) -> Rate | None:
    """FLOP/s one device of this model achieves, or None when the table has no row for it."""
    found = TRAINING_RATES.get((device_name, bf16))
    if found is None and not bf16:  # a bf16 device asked to train in fp32: a quarter of its bf16 rate or less
        faster = TRAINING_RATES.get((device_name, True))
        if faster is not None:
            return Rate(faster.low / 8, faster.high / 4, f"{faster.source}; fp32 taken as 1/8-1/4 of bf16")
    return found


def scaling(processes: int, nodes: int) -> float:
    """The share of ``processes x nodes`` devices' summed rate a data-parallel job keeps."""
    return max(0.5, 1 - SCALING_LOSS_IN_NODE * (processes - 1) - SCALING_LOSS_ACROSS_NODES * (nodes - 1))
