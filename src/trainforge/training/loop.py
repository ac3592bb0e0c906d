"""The training loop: one explicit loop for every method, readable top to bottom.

``run_training`` is setup -> resume -> train (with periodic validation, early stopping, checkpoints) ->
export. The data position is a pure function of (seed, step), and every RNG state is checkpointed, so a
run that is killed and resumed ends with the same weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainforge.errors import NonFiniteLoss, OutOfMemory
from trainforge.planning.work import optimizer_steps
from trainforge.training.attention import use_packed_attention
from trainforge.training.checkpoint import TrainingState, load_latest, load_weights, save_checkpoint, step_folder
from trainforge.training.config import TrainConfig
from trainforge.training.devices import Device
from trainforge.training.distributed import World, gradient_sync, wrap
from trainforge.training.lora import hold_frozen_base
from trainforge.training.memory import PeakMemory
from trainforge.training.norm import fuse_rms_norms
from trainforge.training.objectives import LanguageModeling, Objective
from trainforge.training.recompute import keep_fewer_activations
from trainforge.training.selection import LOSS_TOLERANCE, improves
from trainforge.training.selection import objective as selection_objective

Emit = Callable[[dict[str, Any]], None]


def print_metrics(record: dict[str, Any]) -> None:
    """Metrics are JSON lines on stdout: SageMaker MetricDefinitions and the local runner both parse them."""
    print(json.dumps(record), flush=True)


@dataclass
class Outcome:
    steps: int
    tokens_seen: int
    final_loss: float
    best_eval_loss: float | None
    stopped_early: bool
    interrupted: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the highest peak memory of the run (bytes; RSS on a CPU, allocated device memory on a GPU), if known
    peak_memory: int | None = None
    #: the step whose trainable weights the run ended with, when not its last (the best validation's)
    restored_step: int | None = None
    #: the best validation's exact match, where the run selects by it (``TrainConfig.selection_metric``)
    best_exact_match: float | None = None


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def total_steps(config: TrainConfig, examples: int, world: World) -> int:
    return optimizer_steps(
        config.max_steps, config.epochs, examples, config.batch_size * config.grad_accum * world.size
    )


def sample_indices(config: TrainConfig, size: int, step: int, micro: int, world: World) -> list[int]:
    """Which examples this rank trains on at (step, micro-batch): a seeded permutation per epoch."""
    per_micro = config.batch_size * world.size
    start = (step * config.grad_accum + micro) * per_micro + world.rank * config.batch_size
    indices = []
    for position in range(start, start + config.batch_size):
        epoch, within = divmod(position, size)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        indices.append(int(torch.randperm(size, generator=generator)[within]))
    return indices


def _to(batch: dict[str, torch.Tensor], device: Device) -> dict[str, torch.Tensor]:
    return {key: value.to(device.torch_device) for key, value in batch.items()}


class _Interrupt:
    """SIGTERM (spot reclaim, StopTrainingJob) asks for a checkpoint at the end of the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


@dataclass(frozen=True)
class Validation:
    loss: float
    #: the share of examples greedy decoding would answer word for word (``training.selection``), measured
    #: where the run selects by it
    exact_match: float | None = None


def evaluate(
    model: torch.nn.Module, objective: Objective, config: TrainConfig, device: Device, world: World
) -> Validation:
    """Mean validation loss over every example, each rank taking every world-size-th batch, and its exact
    match where ``config.selection_metric`` asks for it. Every rank runs the same number of forwards (a rank
    past the end repeats the first batch and does not count it): a sharded model all-gathers its weights in
    each forward, which needs every rank to take part."""
    answers: LanguageModeling | None = None  # the objective that scores answers, where the run selects by them
    if config.selection_metric == "exact_match":
        if not isinstance(objective, LanguageModeling):
            raise TypeError(f"exact_match selection scores answers; {type(objective).__name__} has none")
        answers = objective
    model.eval()
    # loss sum, loss terms, examples answered exactly, examples
    totals = torch.zeros(4, dtype=torch.float64)
    stride = config.batch_size * world.size
    rounds = math.ceil(len(objective) / stride)
    with torch.no_grad():
        for start in range(world.rank * config.batch_size, rounds * stride, stride):
            counted = start < len(objective)
            first = start if counted else 0
            batch = _to(objective.batch(list(range(first, min(first + config.batch_size, len(objective))))), device)
            hits = documents = 0
            with device.autocast():
                if answers is not None:
                    loss_sum, hits, documents = answers.exact_match_sums(model, batch)
                else:
                    loss_sum = float(objective.loss_sum(model, batch))
            if counted:
                totals += torch.tensor([loss_sum, objective.count(batch), hits, documents], dtype=torch.float64)
    model.train()
    world.all_reduce_sum(totals)
    loss = float(totals[0]) / max(float(totals[1]), 1.0)
    return Validation(loss, None if answers is None else float(totals[2]) / max(float(totals[3]), 1.0))


def run_training(
    model: torch.nn.Module,
    train: Objective,
    validation: Objective | None,
    config: TrainConfig,
    device: Device,
    world: World,
    checkpoint_dir: Path,
    emit: Emit = print_metrics,
    on_validation: Callable[[int, float], None] | None = None,
) -> Outcome:
    """Train to the configured length (or an early stop, or a SIGTERM), checkpointing on the way and resuming
    from the latest checkpoint. ``on_validation`` is told, after each periodic validation, the step and the
    objective of the best validation so far (``training.selection``; a tuning trial prints it for AMT's early
    stopping): the loop's own best, which a resumed run reads back from its checkpoint."""
    use_packed_attention(model, device.kind)
    keep_fewer_activations(
        model, checkpointing=any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    )
    fuse_rms_norms(model)
    # wrap first: FSDP replaces the parameters with shards, and the optimizer must hold those
    wrapped = wrap(model, world, config.distributed, device.torch_device, device.bf16)
    if device.autocast_dtype is not None:
        hold_frozen_base(model, device.autocast_dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = total_steps(config, len(train), world)
    scheduler = cosine_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    state = load_latest(checkpoint_dir, model, optimizer, scheduler, world) or TrainingState(0, math.inf, 0, 0)
    # a run that validates ends with its best weights, read back from that step's checkpoint (``_restore_best``);
    # across nodes no disk holds a whole checkpoint before S3 merges them, so there the last weights stay
    restores = validation is not None and _one_disk(world)
    if validation is not None and not restores and world.is_main:
        emit({"event": "note", "message": "several nodes: the run ends with its last weights, not its best"})
    if state.step and world.is_main:
        emit({"event": "resumed", "step": state.step})
    interrupt = _Interrupt()
    # a run whose early stop was checkpointed (then killed before it exported) stays stopped when resumed
    stopped = validation is not None and _patience_spent(config, state)
    outcome = Outcome(state.step, state.tokens_seen, state.last_loss, None, stopped, False)
    memory = PeakMemory(device)
    clock = time.perf_counter()
    window_tokens = 0
    model.train()
    try:
        while state.step < steps and not outcome.stopped_early:
            micro_batches = [
                _to(train.batch(sample_indices(config, len(train), state.step, micro, world)), device)
                for micro in range(config.grad_accum)
            ]
            counts = torch.tensor([float(sum(train.count(b) for b in micro_batches))], dtype=torch.float64)
            global_count = float(world.all_reduce_sum(counts.clone())[0])
            loss_total = torch.zeros((), dtype=torch.float64)
            for micro, batch in enumerate(micro_batches):
                with gradient_sync(wrapped, enabled=micro == config.grad_accum - 1):
                    with device.autocast():
                        loss_sum = train.loss_sum(wrapped, batch)
                    # DDP and FSDP average gradients over ranks; scaling by world size makes it a global sum.
                    (loss_sum * world.size / global_count).backward()
                loss_total += loss_sum.detach().double().cpu()
                window_tokens += train.tokens(batch)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP: the norm over every shard
                grad_norm = grad_norm.full_tensor()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            device.mark_step()
            state.step += 1
            loss = float(world.all_reduce_sum(loss_total.unsqueeze(0))[0]) / global_count
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss} at step {state.step}: lower learning_rate or check the data")
            state.tokens_seen += window_tokens * world.size
            state.last_loss = loss
            if world.is_main:
                device.synchronize()
                elapsed = time.perf_counter() - clock
                record = {
                    "step": state.step,
                    "total_steps": steps,
                    "loss": round(loss, 6),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": round(float(grad_norm), 4),
                    "tokens_per_s": round(window_tokens * world.size / elapsed, 1),
                    "tokens_seen": state.tokens_seen,
                    **_megabytes(memory.step()),
                }
                outcome.history.append(record)
                emit(record)
            clock, window_tokens = time.perf_counter(), 0
            # the bare model: a DDP forward syncs buffers, which validation does not need
            stop = _validate(
                model, validation, config, device, world, state, outcome, emit, steps, memory, on_validation
            )
            # a SIGTERM may reach one rank a step before another: all ranks checkpoint and stop together
            interrupted = world.any(interrupt.requested)
            best_now = restores and state.best_step == state.step  # the weights the run may end with
            if state.step % config.checkpoint_every == 0 or interrupted or stop or best_now:
                save_checkpoint(checkpoint_dir, model, optimizer, scheduler, state, config.keep_checkpoints, world)
            if interrupted:
                outcome.interrupted = True
                break
            if stop:
                outcome.stopped_early = True
                break
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(f"out of device memory at step {state.step + 1}: {exc}") from exc
    finally:
        interrupt.restore()
    outcome.steps = state.step
    outcome.tokens_seen = state.tokens_seen
    outcome.final_loss = state.last_loss
    outcome.peak_memory = memory.run
    if validation is not None and math.isfinite(state.best_eval_loss):
        outcome.best_eval_loss, outcome.best_exact_match = state.best_eval_loss, state.best_exact_match
        if restores and not outcome.interrupted and 0 < state.best_step < state.step:
            _restore_best(model, checkpoint_dir, state, outcome, emit, world)
    return outcome


def _one_disk(world: World) -> bool:
    """Whether every process of the run writes to one disk (one node): only then can each read back the
    whole of a checkpoint it just wrote. SageMaker gives each node a disk of its own and merges their parts
    only in S3, which a resumed job downloads whole; torchrun says how many processes share a node."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(world.size))) == world.size


def _restore_best(
    model: torch.nn.Module, checkpoint_dir: Path, state: TrainingState, outcome: Outcome, emit: Emit, world: World
) -> None:
    """End with the weights of the best validation (``training.selection``), as HF's ``load_best_model_at_end``
    and Keras's ``restore_best_weights`` do: the run's figures (its best loss, a tuning trial's objective and
    forgetting) and the model it exports are then the same model's. Early stopping in particular stops ``patience``
    evaluations after the best (or after a later lowest loss), so its last weights are worse on validation."""
    load_weights(step_folder(checkpoint_dir, state.best_step), model)
    outcome.restored_step = state.best_step
    if world.is_main:
        # not "eval_loss": readers of validation records (SageMaker's metric regexes, pruning, the loss chart)
        # would count the restored step's loss a second time
        emit({"event": "restored_best", "step": state.best_step, "validation_loss": round(state.best_eval_loss, 6)})


def _validate(
    model: torch.nn.Module,
    validation: Objective | None,
    config: TrainConfig,
    device: Device,
    world: World,
    state: TrainingState,
    outcome: Outcome,
    emit: Emit,
    steps: int,
    memory: PeakMemory,
    on_validation: Callable[[int, float], None] | None = None,
) -> bool:
    """Periodic validation (its loss, and its exact match where the run selects by it); returns True when early
    stopping says to stop. The record carries the peak memory since the previous evaluation."""
    if validation is None or len(validation) == 0 or (state.step % config.eval_every and state.step != steps):
        return False
    result = evaluate(model, validation, config, device, world)
    metric = config.selection_metric
    better = improves(metric, result.loss, result.exact_match, state.best_eval_loss, state.best_exact_match)
    if better:
        state.best_eval_loss, state.best_exact_match, state.best_step = result.loss, result.exact_match, state.step
    # patience runs out only while nothing improves: a new lowest loss resets it even when the selected
    # metric stalls, as exact match can before a task is learnt (a trial on the tuning benchmark's coordinates
    # answered 0.10-0.21 of its selection slice for 50 steps while its loss fell, then 0.74 by step 80)
    learning = result.loss < state.lowest_eval_loss - LOSS_TOLERANCE
    state.lowest_eval_loss = min(state.lowest_eval_loss, result.loss)
    state.evals_without_improvement = 0 if better or learning else state.evals_without_improvement + 1
    if world.is_main:
        exact = {} if result.exact_match is None else {"eval_exact_match": round(result.exact_match, 6)}
        record = {"step": state.step, "eval_loss": round(result.loss, 6), **exact, **_megabytes(memory.interval())}
        outcome.history.append(record)
        emit(record)
        if on_validation is not None:
            on_validation(state.step, selection_objective(metric, state.best_eval_loss, state.best_exact_match))
    return _patience_spent(config, state)


def _patience_spent(config: TrainConfig, state: TrainingState) -> bool:
    """Whether early stopping says to stop: ``early_stopping_patience`` evaluations in a row that neither beat
    the best step nor lowered the validation loss."""
    patience = config.early_stopping_patience
    return patience is not None and state.evals_without_improvement >= patience


def _megabytes(peak: int | None) -> dict[str, int]:
    """The metrics' memory field: ``peak_memory_mb``, absent where the device's memory cannot be read."""
    return {} if peak is None else {"peak_memory_mb": round(peak / (1 << 20))}
