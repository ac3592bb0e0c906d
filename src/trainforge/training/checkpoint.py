"""Checkpoints that make a resumed run continue exactly where the interrupted one was.

A checkpoint holds the trainable weights and the optimizer state (written with
``torch.distributed.checkpoint``: each rank writes its own shard, so a sharded FSDP model is never gathered
onto one device, and a checkpoint resumes on a different number of processes), the scheduler, the step (the
data position is a pure function of the step and the seed), the best validation loss and its step, and
every rank's RNG states. The best step's checkpoint outlives the rotation, so a run that validates ends
with its best weights even when it was resumed after them. It is written to a temporary folder, completed
with a ``COMPLETE`` marker and then renamed, so a process killed mid-write leaves either the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from trainforge.errors import TrainingFailed
from trainforge.training.distributed import World

MARKER = "COMPLETE"
_PREFIX = "step-"
#: only what training changes: the LoRA adapter, or every weight for a full fine-tune (frozen weights come
#: from the base model, so loading checks the missing keys itself instead of ``strict``)
_TRAINABLE = StateDictOptions(ignore_frozen_params=True, strict=False)


@dataclass
class TrainingState:
    step: int
    best_eval_loss: float
    evals_without_improvement: int
    tokens_seen: int
    #: the step of the best validation (0: none yet); its checkpoint is kept out of the rotation, and
    #: the run ends with its trainable weights (``load_weights``). Checkpoints from before it read as 0.
    best_step: int = 0
    #: the best step's exact match, where the run selects by it (``training.selection``); None before the
    #: first validation, in a run that selects by loss, and in checkpoints from before it
    best_exact_match: float | None = None
    #: the last step's training loss, so that a run resumed at its end (killed before it exported) reports it
    #: too; NaN before the first step and in checkpoints from before it
    last_loss: float = math.nan
    #: the lowest validation loss so far, whichever step the run selects: under ``exact_match`` a new low
    #: shows the model still learning while its answers have yet to follow (``loop._validate``); infinite
    #: before the first validation; a checkpoint from before it reads its best loss (``load_latest``)
    lowest_eval_loss: float = math.inf


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    state: TrainingState,
    keep: int,
    world: World,
) -> Path:
    """Collective: every rank calls it. ``model`` is the bare (or FSDP-sharded) module, not a DDP wrapper.

    Each node's first process finalises the folder on its own disk: with one shared disk the first rename
    wins, and with a disk per node (SageMaker syncs each node's checkpoint folder to the same S3 prefix)
    every node's shards land under the same ``step-*`` name.
    """
    final = step_folder(root, state.step)
    partial = root / f".partial-{final.name}"
    if world.local_rank == 0:
        for stale in (partial, final):  # left by a run that died after this step; never loaded (no marker)
            shutil.rmtree(stale, ignore_errors=True)
    world.barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_TRAINABLE)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=partial)
    torch.save(rng_state(), partial / f"rng-{world.rank}.pt")
    if world.is_main:
        torch.save({"state": state.__dict__, "scheduler": scheduler.state_dict()}, partial / "state.pt")
    world.barrier()
    if world.is_main:
        (partial / MARKER).write_text(str(state.step))
    world.barrier()
    if world.local_rank == 0:
        with contextlib.suppress(FileNotFoundError):
            partial.rename(final)
        older = sorted(p for p in root.glob(f"{_PREFIX}*") if p.name <= final.name)
        best = step_folder(root, state.best_step).name
        for old in older[:-keep]:
            if old.name != best:  # the best step's weights stay: the run ends with them
                shutil.rmtree(old, ignore_errors=True)
    world.barrier()
    return final


def step_folder(root: Path, step: int) -> Path:
    return root / f"{_PREFIX}{step:08d}"


def load_weights(checkpoint: Path, model: torch.nn.Module) -> None:
    """Collective: the trainable weights of ``checkpoint`` into ``model``, in place (the optimizer, the
    scheduler and the step stay as they are: the run is over, only its weights go back)."""
    model_state = get_model_state_dict(model, options=_TRAINABLE)
    try:
        dcp.load({"model": model_state}, checkpoint_id=checkpoint)  # the model's keys only
    except (dcp.api.CheckpointException, RuntimeError, ValueError, KeyError, FileNotFoundError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise TrainingFailed(
            f"the best validation loss's checkpoint {checkpoint} could not be read back at the end of the run "
            f"(removed while the run was going?); the last step's checkpoint is beside it. {reason}"
        ) from exc
    keys = set_model_state_dict(model, model_state, options=_TRAINABLE)
    if keys.unexpected_keys or set(keys.missing_keys) & set(model_state):
        raise _mismatch(checkpoint, keys)


def complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{_PREFIX}*") if (p / MARKER).is_file())


def load_latest(
    root: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, world: World
) -> TrainingState | None:
    """Restore the newest complete checkpoint, if any; a partial one (no marker) is ignored. Collective."""
    found = complete_checkpoints(root)
    if not found:
        return None
    latest = found[-1]
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_TRAINABLE)
    try:
        dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=latest)  # in place
    except (dcp.api.CheckpointException, RuntimeError, ValueError, KeyError) as exc:
        raise _mismatch(latest, exc) from exc
    keys = set_state_dict(
        model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state, options=_TRAINABLE
    )
    if keys.unexpected_keys or set(keys.missing_keys) & set(model_state):
        raise _mismatch(latest, keys)
    saved = torch.load(latest / "state.pt", weights_only=False)
    scheduler.load_state_dict(saved["scheduler"])
    # a run resumed on more processes than wrote the checkpoint seeds the new ranks from rank 0's state
    rng = latest / f"rng-{world.rank}.pt"
    set_rng_state(torch.load(rng if rng.is_file() else latest / "rng-0.pt", weights_only=False))
    state = dict(saved["state"])
    # a checkpoint from before lowest_eval_loss: its best loss is the lowest it knew of (infinite would count
    # the first validation after the resume as a new low and reset the patience already spent)
    state.setdefault("lowest_eval_loss", state["best_eval_loss"])
    return TrainingState(**state)


def _mismatch(checkpoint: Path, detail: object) -> TrainingFailed:
    reason = str(detail).strip().splitlines()[-1]  # DCP wraps each rank's traceback; its last line says what
    return TrainingFailed(
        f"checkpoint {checkpoint} does not match the model being trained (changed base model, method or "
        f"LoRA settings?); move the checkpoints folder away to start afresh. {reason}"
    )
