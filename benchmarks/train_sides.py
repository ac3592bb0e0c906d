"""The sides of the training benchmark, each given the same model, examples, adapter and real-token budget.

- TrainForge: its loop as ``trainforge-train`` runs it (packed rows, its LoRA layers, loss and attention).
- TRL ``SFTTrainer`` with ``packing=True`` (best-fit decreasing, padding-free rows) and peft's LoRA.
- HF ``Trainer`` with peft's LoRA and padded batches of whole examples, as many as fill the budget.

Every side sees the same tokenized examples (chat template, loss on the assistant's tokens only: the labels
are TrainForge's, which TRL and HF take as given) and the same budget of real tokens per step: TrainForge
and TRL train ``rows`` packed rows of ``seq_len`` tokens, HF Trainer a batch of examples grouped up to
``rows * seq_len`` real tokens. Each side's throughput is counted by one :class:`StepMeter`: the real
tokens that reached the model's forward between two step ends, so a data loader that fetches ahead
cannot credit one step with the next step's batch.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback

from trainforge.training.config import TrainConfig
from trainforge.training.devices import select_device
from trainforge.training.distributed import World
from trainforge.training.loop import run_training
from trainforge.training.lora import apply_lora, lora_config
from trainforge.training.objectives import LanguageModeling
from trainforge.training.packing import pack

LORA = {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0}


@dataclass(frozen=True)
class Job:
    """What every side trains: the same length, budget, steps, device and method."""

    seq_len: int
    rows: int
    steps: int
    warmup: int
    device: str = "cpu"
    method: str = "lora"
    learning_rate: float = 1e-4

    @property
    def budget(self) -> int:
        """Real tokens per step: ``rows`` full rows."""
        return self.rows * self.seq_len

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps


def real_tokens(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Real (non-padding) tokens in one forward's inputs, read from what the sides pass:

    - a 2-D ``attention_mask`` (HF Trainer's padded batches): its sum;
    - ``position_ids`` without one (TrainForge's packed rows, whose padding restarts at position 0 and
      stays there; TRL's padding-free rows): every position after a document's first, plus one first
      position per document (the position 1 that follows it; every example has two tokens or more);
    - otherwise every input id.
    """
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() == 2:
        return int(mask.sum())
    positions = kwargs.get("position_ids")
    if isinstance(positions, torch.Tensor):
        return int((positions > 0).sum() + (positions == 1).sum())
    ids = kwargs.get("input_ids", args[0] if args else None)
    return int(ids.numel()) if isinstance(ids, torch.Tensor) else 0


@dataclass
class StepMeter:
    """Tokens and seconds per optimizer step, from forward pre-hooks on the causal LM and step-end calls.
    Seconds are kept twice: wall clock, and the process's CPU time (what the step cost the cores, which a
    host shared with other work does not inflate; with one torch thread it is the step's time on one core)."""

    synchronize: Callable[[], None] = lambda: None
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    _pending: int = 0
    _last: float = 0.0
    _last_cpu: float = 0.0

    def attach(self, model: torch.nn.Module) -> None:
        """Count what reaches ``model``'s forward (the causal LM itself, inside any adapter wrapper: gradient
        checkpointing re-runs its layers, not its forward)."""

        def count(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if module.training:  # not the reference forwards of a DPO-like loss or evaluation
                self._pending += real_tokens(args, kwargs)

        model.register_forward_pre_hook(count, with_kwargs=True)

    def start(self) -> None:
        self._pending, self._last, self._last_cpu = 0, time.perf_counter(), time.process_time()

    def step_end(self) -> None:
        self.synchronize()
        now, cpu = time.perf_counter(), time.process_time()
        self.tokens.append(self._pending)
        self.seconds.append(now - self._last)
        self.cpu_seconds.append(cpu - self._last_cpu)
        self._pending, self._last, self._last_cpu = 0, now, cpu

    def rate(self, warmup: int, clock: str = "wall") -> float:
        """Median tokens per second (``clock`` wall) or per CPU second (``cpu``) of the steps after ``warmup``."""
        seconds = self.cpu_seconds if clock == "cpu" else self.seconds
        return statistics.median(t / s for t, s in zip(self.tokens[warmup:], seconds[warmup:], strict=True))


@dataclass(frozen=True)
class Side:
    """One contender: its name and how it trains (a runner below, bound to a precision)."""

    name: str
    run: Callable[[Any, Any, list[Any], Job, StepMeter], dict[str, Any]]

    def __call__(
        self, model: Any, tokenizer: Any, examples: list[Any], job: Job, meter: StepMeter | None = None
    ) -> tuple[StepMeter, dict[str, Any]]:
        meter = meter or StepMeter()
        if job.device == "cuda":
            meter.synchronize = torch.cuda.synchronize
        meter.attach(model)
        extra = self.run(model, tokenizer, examples, job, meter)
        return meter, extra


def _train_config(job: Job, precision: str, **extra: Any) -> Any:
    return TrainConfig(
        method=job.method,
        max_steps=job.total_steps,
        batch_size=job.rows,
        max_seq_len=job.seq_len,
        learning_rate=job.learning_rate,
        eval_every=10_000,
        checkpoint_every=10_000,
        precision=precision,
        device=job.device,
        **LORA,
        **extra,
    )


def peft_config(job: Job) -> Any:
    """The job's LoRA as stock peft builds it (the same function TrainForge's own adapter reads)."""
    return lora_config(_train_config(job, "fp32"))


def trainforge(precision: str) -> Callable[[Any, Any, list[Any], Job, StepMeter], dict[str, Any]]:
    def run(model: Any, tokenizer: Any, examples: list[Any], job: Job, meter: StepMeter) -> dict[str, Any]:

        config = _train_config(job, precision)
        if job.method == "lora":
            model = apply_lora(model, config)
        sequences, stats = pack(examples, job.seq_len)
        objective = LanguageModeling(sequences, job.seq_len, tokenizer.pad_token_id)
        device = select_device(job.device, precision)
        model.to(device.torch_device)

        def emit(record: dict[str, Any]) -> None:
            if "loss" in record:
                meter.step_end()

        meter.start()
        with tempfile.TemporaryDirectory() as checkpoints:
            run_training(model, objective, None, config, device, World(0, 1, 0), Path(checkpoints), emit)
        return {"padding": stats.padding_waste, "bf16": device.bf16}

    return run


class _StepEnds(TrainerCallback):
    """Closes the meter's step at each optimizer step's end (after the optimizer and scheduler steps)."""

    def __init__(self, meter: StepMeter) -> None:
        self.meter = meter

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self.meter.start()

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.meter.step_end()


def _common_arguments(job: Job, out: str) -> dict[str, Any]:
    return {
        "output_dir": out,
        "max_steps": job.total_steps,
        "learning_rate": job.learning_rate,
        "save_strategy": "no",
        "report_to": [],
        "logging_steps": 10_000,
        "use_cpu": job.device == "cpu",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "seed": 0,
    }


def trl(precision: str) -> Callable[[Any, Any, list[Any], Job, StepMeter], dict[str, Any]]:
    """TRL's SFTTrainer, packing with best-fit decreasing into padding-free rows. ``precision`` fp32 or bf16
    sets that precision and turns off TRL's default gradient checkpointing (TrainForge does not checkpoint);
    ``defaults`` leaves both at TRL's defaults (bf16 autocast, gradient checkpointing on)."""

    def run(model: Any, tokenizer: Any, examples: list[Any], job: Job, meter: StepMeter) -> dict[str, Any]:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
        chosen = {} if precision == "defaults" else {"bf16": precision == "bf16", "gradient_checkpointing": False}
        with tempfile.TemporaryDirectory() as out:
            args = SFTConfig(
                **_common_arguments(job, out),
                per_device_train_batch_size=job.rows,
                max_length=job.seq_len,
                packing=True,
                packing_strategy="bfd",
                **chosen,
            )
            trainer = SFTTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=peft_config(job) if job.method == "lora" else None,
                callbacks=[_StepEnds(meter)],
            )
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        return {"bf16": bool(args.bf16), "gradient_checkpointing": bool(args.gradient_checkpointing)}

    return run


def token_budget_groups(lengths: list[int], budget: int, seed: int = 0) -> list[list[int]]:
    """Example indices in a seeded random order, cut into consecutive groups of at most ``budget`` real
    tokens: a group closes when the next example would not fit, so each holds within one example of it."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    groups: list[list[int]] = [[]]
    filled = 0
    for index in order:
        length = min(lengths[index], budget)
        if groups[-1] and filled + length > budget:
            groups.append([])
            filled = 0
        groups[-1].append(index)
        filled += length
    return groups


def hf_trainer(precision: str) -> Callable[[Any, Any, list[Any], Job, StepMeter], dict[str, Any]]:
    """HF Trainer with peft's LoRA and padded batches (``DataCollatorForSeq2Seq``). A batch is one group of
    :func:`token_budget_groups` (so the batch size in examples varies with their lengths), which HF Trainer
    sees as one dataset item per step; its default precision is fp32."""

    def run(model: Any, tokenizer: Any, examples: list[Any], job: Job, meter: StepMeter) -> dict[str, Any]:
        from peft import get_peft_model
        from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

        if job.method == "lora":
            model = get_peft_model(model, peft_config(job))
        features = [{"input_ids": e.input_ids[: job.seq_len], "labels": e.labels[: job.seq_len]} for e in examples]
        groups = token_budget_groups([len(f["input_ids"]) for f in features], job.budget)
        pad = DataCollatorForSeq2Seq(tokenizer, padding=True)
        counts = {"real": 0, "padded": 0}

        def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
            chosen = [features[i] for item in items for i in item["group"]]
            batch = pad(chosen)
            counts["real"] += int(batch["attention_mask"].sum())
            counts["padded"] += batch["input_ids"].numel()
            return batch

        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                **_common_arguments(job, out),
                per_device_train_batch_size=1,
                remove_unused_columns=False,
                **({} if precision == "defaults" else {"bf16": precision == "bf16"}),
            )
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=[{"group": group} for group in groups],
                data_collator=collate,
                callbacks=[_StepEnds(meter)],
            )
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        return {"padding": 1 - counts["real"] / counts["padded"], "bf16": bool(args.bf16)}

    return run
