"""How long a run takes: its FLOPs over its devices' FLOP/s (``planning.throughput``), plus the evaluation
job and the time a job spends before and after computing.

FLOPs per token, from the base model's shape (``planning.architecture``), counting multiply-adds as two:

- forward: every linear layer of every block and the output head (2 x their weights), and attention's
  scores and weighted sum (2 x 2 x layers x query width x the positions each token attends to: packed
  examples attend only inside themselves, so half an example's length on average);
- a full fine-tune's backward is twice the forward (gradients of inputs and of weights); LoRA's frozen
  base needs only its inputs' gradients (once the linear forward) while attention's backward stays twice
  its forward, and the adapters cost three times their own forward;
- activation checkpointing adds one forward; DPO adds the reference model's forward of both responses.

A speech or image+text model's work is per example (``planning.media``: the encoder over its fixed
positions or the vision tower over each tile, the decoder or language model over the text and image
tokens); its FLOPs per token are an average example's spread over the positions of its row.

Positions are counted with their padding (a packed row is computed whole). Validation during training is a
forward over the held-out side every ``eval_every`` steps; the evaluation job scores base and tuned model
on the held-out examples (a forward each) and generates its samples token by token at the rate the device
reads the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainforge.contracts import PlannedTime, PlannedWork
from trainforge.planning.architecture import ModelShape
from trainforge.planning.machines import Machine
from trainforge.planning.media import MediaWorkload
from trainforge.planning.throughput import GENERATION_BANDWIDTH, Rate, scaling, training_rate
from trainforge.planning.work import validation_passes
from trainforge.spec import Hyperparameters, JobSpec, Method

#: a SageMaker job's time outside its processes: provisioning an instance and pulling a 10-20 GB image (the
#: job's Starting and Downloading phases), typical figures, not measured by this project
JOB_START_SECONDS = (180.0, 420.0)
#: S3 <-> instance storage, for the model's download and the export's upload (assumed, per job)
S3_BYTES_PER_SECOND = 150e6
#: a training process before its first step (imports, model load, tokenizing and packing the quickstart's
#: 1,200 examples) and an evaluation process's load of two models and its reports: measured with the
#: quickstart, 2026-11-30, on the 2-vCPU machine (docs/planning.md); plus reading larger weights
PROCESS_START_SECONDS = 25.0
EVALUATION_START_SECONDS = 20.0
#: reading weights from the instance's storage into memory (assumed)
LOAD_BYTES_PER_SECOND = 500e6


@dataclass(frozen=True)
class Flops:
    linear: float  # forward FLOPs per token of the linear layers and the head
    attention: float  # forward FLOPs per token of attention's two products
    adapters: float  # forward FLOPs per token of the LoRA adapters (0 for a full fine-tune)

    @property
    def forward(self) -> float:
        return self.linear + self.attention + self.adapters


def forward_flops(shape: ModelShape, context: float, lora_rank: int | None) -> Flops:
    """``context``: positions each token attends to, on average."""
    linear = 2 * (
        shape.layers * sum(i * o * copies for i, o, copies in shape.linear_layers())
        + shape.vocab_size * shape.hidden_size
    )
    attention = 2 * 2 * shape.layers * shape.attention_width * context
    adapters = 2 * shape.lora_parameters(lora_rank) if lora_rank else 0
    return Flops(linear, attention, adapters)


def training_flops_per_token(shape: ModelShape, hyper: Hyperparameters, method: Method, context: float) -> float:
    adapter = method in ("lora", "dpo")
    flops = forward_flops(shape, context, hyper.lora_rank if adapter else None)
    if adapter:
        total = 2 * flops.linear + 3 * flops.attention + 3 * flops.adapters
    else:
        total = 3 * (flops.linear + flops.attention)
    if hyper.gradient_checkpointing:
        total += flops.forward
    if method == "dpo":  # the reference model (the adapter switched off) scores both responses
        total += flops.linear + flops.attention
    return total


def job_rate(machine: Machine, bf16: bool) -> Rate | None:
    """FLOP/s of the whole job on ``machine``: its devices' (cores' on a CPU) summed rate, less scaling."""
    rate = training_rate(machine.device_name, bf16)
    if rate is None:
        return None
    devices = machine.cores if machine.device == "cpu" else max(machine.accelerators, 1)
    share = scaling(machine.processes, machine.nodes) * devices * machine.nodes
    return Rate(rate.low * share, rate.high * share, rate.source, rate.measured)


def planned_time(
    spec: JobSpec,
    work: PlannedWork,
    shape: ModelShape | MediaWorkload,
    hyper: Hyperparameters,
    machine: Machine,
    evaluation: Machine,
    *,
    context: float,
    base_bytes: int,
    local: bool,
    waves: int = 1,
) -> PlannedTime | None:
    """``hyper``: the settings the run trains with on ``machine`` (after its memory fit); ``evaluation``:
    where the evaluation job runs; ``base_bytes``: the base model's weight files; ``waves``: a tuning run's
    rounds of trials (``planning.trials``), each a training job of its own. None when the throughput table
    has no row for the machine's device."""
    bf16 = machine.bf16(hyper)
    rate = job_rate(machine, bf16)
    if rate is None:
        return None
    if isinstance(shape, MediaWorkload):  # an average example's FLOPs, its encoder's too, over its row's positions
        training, forward_example = shape.example_flops(hyper, spec.method)
        per_token, forward = training / shape.row_tokens, forward_example / shape.row_tokens
    else:
        per_token = training_flops_per_token(shape, hyper, spec.method, context)
        forward = forward_flops(shape, context, hyper.lora_rank if spec.method in ("lora", "dpo") else None).forward
    validation = validation_passes(spec, work.steps) * work.validation_tokens * forward
    flops = work.steps * work.tokens_per_step * per_token + validation
    load = base_bytes / LOAD_BYTES_PER_SECOND
    evaluation_seconds = EVALUATION_START_SECONDS + 2 * load
    evaluation_seconds += _evaluation_seconds(work, shape, evaluation, forward, bf16=evaluation.bf16(hyper))
    startup = 0.0
    if not local:  # each wave's training jobs and the evaluation job start; the base model goes down to each,
        # the model comes back up from training
        model_bytes = shape.parameters * 4  # the export is fp32 (training/export.py)
        jobs = waves + 1
        startup = jobs * sum(JOB_START_SECONDS) / 2 + (jobs * base_bytes + 2 * model_bytes) / S3_BYTES_PER_SECOND
    start = (PROCESS_START_SECONDS + load) * waves
    low, high = waves * flops / rate.high, waves * flops / rate.low
    return PlannedTime(
        flops_per_token=per_token,
        throughput_low=rate.low,
        throughput_high=rate.high,
        throughput_source=rate.source,
        throughput_measured=rate.measured,
        training_seconds_low=round(low, 1),
        training_seconds_high=round(high, 1),
        process_start_seconds=round(start, 1),
        evaluation_seconds=round(evaluation_seconds, 1),
        startup_seconds=round(startup, 1),
        total_seconds_low=round(start + low + evaluation_seconds + startup, 1),
        total_seconds_high=round(start + high + evaluation_seconds + startup, 1),
    )


def span(low: float, high: float) -> str:
    """``low``-``high`` seconds as people read durations: seconds, minutes or hours."""
    unit, size = _unit(high)
    digits = 1 if size > 1 else 0
    first, last = f"{low / size:.{digits}f}", f"{high / size:.{digits}f}"
    return f"{last} {unit}" if first == last else f"{first}-{last} {unit}"


def duration(seconds: float) -> str:
    unit, size = _unit(seconds)
    return f"{seconds / size:.{1 if size > 1 else 0}f} {unit}"


def _unit(seconds: float) -> tuple[str, int]:
    return next(((unit, size) for unit, size in (("h", 3600), ("min", 60)) if seconds >= 2 * size), ("s", 1))


def _evaluation_seconds(
    work: PlannedWork, shape: ModelShape | MediaWorkload, machine: Machine, forward: float, *, bf16: bool
) -> float:
    """Scoring both models (a forward per token, at the training rate's high end: no backward, no optimizer)
    and generating their samples at the rate the device reads the weights."""
    rate = job_rate(machine, bf16)
    scoring = 2 * work.evaluation_tokens * forward / rate.high if rate else 0.0
    bandwidth = GENERATION_BANDWIDTH.get(machine.device_name)
    weight_bytes = shape.parameters * (2 if bf16 else 4)
    generating = 2 * work.generated_tokens * weight_bytes / bandwidth if bandwidth else 0.0
    return scoring + generating
