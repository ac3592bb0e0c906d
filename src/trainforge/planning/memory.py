"""The one estimate of a training run's peak memory, and the settings that bring it under a device's memory.

The estimate counts what the training loop (``trainforge.training``) holds at its peak, the end of the
forward and the start of the backward, from the base model's config and the job's hyperparameters:

- runtime: the process before the model (Python, torch, transformers, peft, tokenizer) on a CPU; the CUDA
  context on a GPU;
- weights: fp32 as loaded (sharded over the processes under FSDP, plus the two blocks gathered at a time),
  and under bf16 autocast bf16 copies of the linear weights (:func:`bf16_linear_copies`) and of the head;
- gradients and AdamW's two moments, of the trainable parameters (the adapter for LoRA and DPO);
- activations the backward needs, per token: per decoder block the two norms' fp32 inputs, the normed
  inputs of the projections, attention's q, k, v and output (twice: the kernel's and the output
  projection's input), the gated MLP's two projections (training/recompute.py rebuilds the rest), the
  adapters' rank-r products and their dropout masks (training/lora.py); under activation checkpointing
  only each block's input, plus one block rebuilt during the backward;
- the loss: the labelled positions' hidden states and their gradient, and one chunk of logits
  (training/linear_cross_entropy.py), or the full logits where the model's head is not plain or the
  objective is DPO;
- the backward's working set: the gradients flowing through one block;
- the step's batches: token ids, labels, positions and the packed rows' attention masks.

On a CPU the estimate is of the process's resident set (RSS), which the metrics report as
``peak_memory_mb``; on a GPU of the device memory the process holds. Measured against it, with the
figures, in docs/benchmarks.md ("Training memory").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from trainforge.planning.architecture import ModelShape
from trainforge.spec import Hyperparameters, Method

DeviceKind = Literal["cpu", "cuda", "neuron"]
H = TypeVar("H", bound=Hyperparameters)

GiB = 1 << 30
MiB = 1 << 20

#: the process before the model: on a CPU the RSS of Python with torch, transformers and peft imported and
#: a tokenizer loaded (0.35-0.4 GiB measured with torch 2.13); on a GPU the CUDA context and cuBLAS
#: workspaces, which torch's allocator does not count (not measured here: no GPU was lent to this work)
RUNTIME_BYTES: dict[DeviceKind, int] = {"cpu": 400 * MiB, "cuda": 768 * MiB, "neuron": 0}
#: the share of a device's memory a run may plan to use. On a CPU the estimate came within -12%..+7% of the
#: measured peaks (docs/benchmarks.md), and host memory is shared with the operating system and whatever
#: else runs there: 0.75. An accelerator is the process's own: 0.85 leaves 15% for the estimate's error
#: there, which is not measured (no GPU was lent to this work).
HEADROOM: dict[DeviceKind, float] = {"cpu": 0.75, "cuda": 0.85, "neuron": 0.85}
#: below this many tokens per micro-batch, a smaller micro-batch costs throughput (matrix multiplies too
#: small for the device), and activation checkpointing (one more forward per step) is the cheaper fix
EFFICIENT_MICRO_BATCH_TOKENS: dict[DeviceKind, int] = {"cpu": 512, "cuda": 4096, "neuron": 4096}
#: logit elements per chunk of the chunked loss (training/linear_cross_entropy.py, which says why these sizes)
LOSS_CHUNK_ELEMENTS: dict[DeviceKind, int] = {"cpu": 1 << 23, "cuda": 1 << 27, "neuron": 1 << 27}
#: devices whose attention kernel runs in fp32 under bf16 autocast (training/attention.py says why): its
#: q, k, v and output are kept in fp32 for the backward
FP32_ATTENTION_DEVICES: frozenset[DeviceKind] = frozenset({"cpu"})
_ADAPTED_LINEARS = 7  # q, k, v, o, gate, up, down
#: how :func:`memory_facts`' sentence starts, so that a failure's hint can find it in the cause
FACTS_PREFIX = "Memory: "


class Workload(Protocol):
    """A model the text estimate does not describe (a speech or image+text model with its data:
    ``planning.media.MediaWorkload``), which estimates its own peak; the fitting below is the same."""

    @property
    def parameters(self) -> int: ...

    def peak(self, hyper: Hyperparameters, method: Method, *, device: DeviceKind, bf16: bool) -> MemoryEstimate: ...


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes at the peak, by what holds them."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        shown = ", ".join(f"{name} {gib(value)}" for name, value in self.parts.items() if value >= 10 * MiB)
        return f"{gib(self.total)} GiB ({shown})"


def gib(value: float) -> str:
    return f"{value / GiB:.2f}"


def bf16_linear_copies(shape: ModelShape) -> int:
    """Bytes of the bf16 copies of the decoder's linear weights a run under bf16 autocast holds beside the
    fp32 ones: a LoRA model's frozen base, held for the whole run (training/lora.py,
    ``hold_frozen_base``), or autocast's cache of trainable weights, kept for the backward."""
    return shape.layers * sum(i * o * copies for i, o, copies in shape.linear_layers()) * 2


def tokens_per_micro_batch(hyper: Hyperparameters, method: Method) -> int:
    """Packed rows are always ``max_seq_len`` long; DPO's rows are a pair's two responses, at most as long."""
    rows = hyper.batch_size * (2 if method == "dpo" else 1)
    return rows * hyper.max_seq_len


def estimate_peak(
    shape: ModelShape | Workload,
    hyper: Hyperparameters,
    method: Method,
    *,
    device: DeviceKind,
    bf16: bool,
    world_size: int = 1,
) -> MemoryEstimate:
    """Peak memory of one training process (one device) running ``hyper`` on ``shape``."""
    if not isinstance(shape, ModelShape):
        return shape.peak(hyper, method, device=device, bf16=bf16)
    h, inner, layers = shape.hidden_size, shape.intermediate_size * shape.experts_per_token, shape.layers
    compute = 2 if bf16 else 4  # bytes of what the matrix multiplies write
    fp32 = 4  # the residual stream, the norms' statistics, weights as loaded, optimizer state
    adapter = method in ("lora", "dpo")
    sharded = hyper.distributed == "fsdp" and world_size > 1
    shards = world_size if sharded else 1
    tokens = tokens_per_micro_batch(hyper, method)

    weights = shape.parameters * fp32 // shards
    if sharded:
        weights += 2 * shape.block_parameters * compute
    elif bf16:  # and the head's, cast in the loss
        weights += bf16_linear_copies(shape) + shape.vocab_size * h * 2
    trainable = shape.lora_parameters(hyper.lora_rank) if adapter else shape.parameters
    gradients = trainable * fp32 // shards
    if world_size > 1 and not sharded:
        gradients += trainable * fp32  # DDP's gradient buckets
    optimizer = 2 * trainable * fp32 // shards

    # the two norms' outputs, as the five projections after them keep them: one fp32 tensor each, or under
    # autocast bf16 copies: one each where adapters share it (training/lora.py), else one per projection
    normed = (2 if adapter else 5) * h * 2 if bf16 else 2 * h * fp32
    # q, k, v and the kernel's output, and the output projection's input
    kernel = fp32 if device in FP32_ATTENTION_DEVICES else compute
    attention = kernel * (2 * shape.attention_width + 2 * shape.kv_width) + compute * shape.attention_width
    # the two norms' fp32 inputs, all they keep, also where their weights train (training/norm.py)
    block = fp32 * 2 * h + normed + attention + compute * 2 * inner
    if adapter:
        block += compute * _ADAPTED_LINEARS * hyper.lora_rank
        if hyper.lora_dropout > 0:  # a byte-per-element dropout mask of each adapter's input
            block += 5 * h + shape.attention_width + inner
    tail = fp32 * h + compute * h  # the final norm's input and output
    if hyper.gradient_checkpointing:
        activations = tokens * (layers * fp32 * h + tail + block + compute * inner)
    else:
        activations = tokens * (layers * block + tail)

    logits_bytes = tokens * shape.vocab_size * fp32
    if method == "dpo" or not shape.plain_head:
        # the full logits, kept (log-softmax) for the backward, and two more of their size built beside them
        # (DPO's reference pass, or the fp32 copy and cross-entropy's own)
        loss = 3 * logits_bytes
    else:
        chunk_rows = min(tokens, max(1, LOSS_CHUNK_ELEMENTS[device] // shape.vocab_size))
        loss = tokens * h * compute * 2 + 3 * chunk_rows * shape.vocab_size * fp32
        if not adapter:  # the head (tied to the embeddings) gets its gradient in fp32 inside the loss
            loss += shape.vocab_size * h * fp32
    backward = tokens * (fp32 * 2 * h + compute * 4 * inner)
    batches = hyper.grad_accum * hyper.batch_size * (hyper.max_seq_len**2 + 40 * hyper.max_seq_len)
    return MemoryEstimate(
        {
            "runtime": RUNTIME_BYTES[device],
            "weights": weights,
            "gradients": gradients,
            "optimizer": optimizer,
            "activations": activations,
            "loss": loss,
            "backward": backward,
            "batches": batches,
        }
    )


@dataclass(frozen=True)
class Adjustment:
    setting: str
    before: int | bool
    after: int | bool
    reason: str

    def record(self) -> dict[str, int | bool | str]:
        return {"setting": self.setting, "from": self.before, "to": self.after, "reason": self.reason}


@dataclass(frozen=True)
class MemoryFit(Generic[H]):
    """The settings to train with, the estimate for them, and what was changed to get there."""

    hyperparameters: H
    estimate: MemoryEstimate
    requested: Hyperparameters
    requested_estimate: MemoryEstimate
    capacity: int
    budget: int
    device: DeviceKind
    adjustments: list[Adjustment] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.budget

    def budget_text(self) -> str:
        memory = "host" if self.device == "cpu" else self.device
        return (
            f"the budget of {gib(self.budget)} GiB ({HEADROOM[self.device]:.0%} of {gib(self.capacity)} GiB of "
            f"{memory} memory)"
        )

    def explain(self) -> str:
        """Why it does not fit, with the numbers and the levers."""
        return (
            f"training needs an estimated {self.requested_estimate.describe()} at micro-batch "
            f"{self.requested.batch_size} x {self.requested.max_seq_len} tokens, over {self.budget_text()}; even "
            f"micro-batch {self.hyperparameters.batch_size} with gradient checkpointing needs "
            f"{self.estimate.describe()}. Shorten max_seq_len, train a LoRA adapter (method: lora), shard over "
            "several devices (distributed: fsdp) or use an instance with more memory"
        )


def fit_to_memory(
    shape: ModelShape | Workload,
    hyper: H,
    method: Method,
    *,
    device: DeviceKind,
    bf16: bool,
    capacity: int,
    world_size: int = 1,
) -> MemoryFit[H]:
    """``hyper`` as it fits in ``capacity`` bytes (what one process may use of its device), with the same
    effective batch. A smaller micro-batch with more gradient accumulation costs nothing while the
    micro-batch stays large enough for the device (``EFFICIENT_MICRO_BATCH_TOKENS``); below that, activation
    checkpointing is the cheaper fix. When nothing fits, the result's ``fits`` is False and it holds the
    smallest setting tried (micro-batch 1 with checkpointing)."""
    budget = int(capacity * HEADROOM[device])

    def estimate(candidate: Hyperparameters) -> MemoryEstimate:
        return estimate_peak(shape, candidate, method, device=device, bf16=bf16, world_size=world_size)

    requested = estimate(hyper)
    if requested.total <= budget:
        return MemoryFit(hyper, requested, hyper, requested, capacity, budget, device)
    effective = hyper.batch_size * hyper.grad_accum
    sizes = [size for size in range(hyper.batch_size, 0, -1) if effective % size == 0]

    def largest_fitting(checkpointing: bool) -> tuple[H, MemoryEstimate]:
        for size in sizes:
            candidate = hyper.model_copy(
                update={"batch_size": size, "grad_accum": effective // size, "gradient_checkpointing": checkpointing}
            )
            found = estimate(candidate)
            if found.total <= budget:
                return candidate, found
        return candidate, found  # the smallest, which does not fit either

    chosen, found = largest_fitting(hyper.gradient_checkpointing)
    efficient = tokens_per_micro_batch(chosen, method) >= EFFICIENT_MICRO_BATCH_TOKENS[device]
    if not hyper.gradient_checkpointing and (found.total > budget or not efficient):
        chosen, found = largest_fitting(True)
    fit = MemoryFit(chosen, found, hyper, requested, capacity, budget, device)
    over = (
        f"micro-batch {hyper.batch_size} x {hyper.max_seq_len} tokens needs an estimated "
        f"{gib(requested.total)} GiB, over {fit.budget_text()}"
    )
    adjustments = []
    if chosen.gradient_checkpointing != hyper.gradient_checkpointing:
        adjustments.append(
            Adjustment(
                "gradient_checkpointing",
                hyper.gradient_checkpointing,
                True,
                f"{over}; checkpointing keeps each block's input alone and costs one more forward per step, "
                f"less than micro-batches under {EFFICIENT_MICRO_BATCH_TOKENS[device]} tokens would",
            )
        )
    if chosen.batch_size != hyper.batch_size:
        adjustments.append(
            Adjustment(
                "batch_size",
                hyper.batch_size,
                chosen.batch_size,
                f"{over}; micro-batch {chosen.batch_size} needs {gib(found.total)} GiB",
            )
        )
        adjustments.append(
            Adjustment(
                "grad_accum",
                hyper.grad_accum,
                chosen.grad_accum,
                f"keeps the effective batch of {effective} sequences per device and step",
            )
        )
    return MemoryFit(chosen, found, hyper, requested, capacity, budget, device, adjustments)


def memory_facts(records: Iterable[dict[str, Any]], peak_seen: int | None = None) -> str | None:
    """One sentence for the cause of a run that died (the triage hint repeats it), from the run's metric
    records (``metrics.jsonl``): the estimate it trained under and on how much device memory, its settings
    after any adjustment, and the highest peak it reported (or ``peak_seen``, in bytes, where whoever
    watched the process saw a higher one). None when the records say nothing about memory."""
    estimate: dict[str, Any] | None = None
    settings: dict[str, Any] = {}
    peak_mb, peak_step = None, None
    for record in records:
        if record.get("event") == "memory":
            estimate = record
            settings = dict(record.get("requested") or {})
        elif record.get("event") == "adjusted":
            settings[str(record["setting"])] = record["to"]
        elif isinstance(record.get("peak_memory_mb"), int | float) and record["peak_memory_mb"] >= (peak_mb or 0):
            peak_mb, peak_step = record["peak_memory_mb"], record.get("step")
    if peak_seen is not None and peak_seen / MiB > (peak_mb or 0):
        peak_mb, peak_step = round(peak_seen / MiB), None
    parts = []
    if estimate is not None and estimate.get("estimate_mb") is not None:
        setting = f"micro-batch {settings.get('batch_size')}" + (
            ", gradient checkpointing" if settings.get("gradient_checkpointing") else ""
        )
        parts.append(
            f"estimated peak {estimate['estimate_mb']:,} MB ({setting}) of {estimate['capacity_mb']:,} MB of "
            f"{estimate['device']} memory, budget {estimate['budget_mb']:,} MB"
        )
    if peak_mb is not None:
        parts.append(f"peak seen {peak_mb:,} MB" + (f" by step {peak_step}" if peak_step is not None else ""))
    return f"{FACTS_PREFIX}{'; '.join(parts)}." if parts else None
