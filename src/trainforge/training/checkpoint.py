"""Checkpoints that make a resumed run continue exactly where the interrupted one was.

A checkpoint holds the trainable weights, optimizer and scheduler state, the step (the data position is a
pure function of the step and the seed), the best validation loss and every RNG state. It is written to a
temporary folder, completed with a ``COMPLETE`` marker and then renamed, so a process killed mid-write
leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MARKER = "COMPLETE"
_PREFIX = "step-"


@dataclass
class TrainingState:
    step: int
    best_eval_loss: float
    evals_without_improvement: int
    tokens_seen: int


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


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only what training changes: the LoRA adapter, or every weight for a full fine-tune."""
    names = {name for name, param in model.named_parameters() if param.requires_grad}
    return {name: tensor for name, tensor in model.state_dict().items() if name in names}


def save_checkpoint(
    root: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, state: TrainingState, keep: int
) -> Path:
    final = root / f"{_PREFIX}{state.step:08d}"
    partial = root / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save(trainable_state(model), partial / "model.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, partial / "optimizer.pt")
    torch.save({"state": state.__dict__, "rng": rng_state()}, partial / "state.pt")
    (partial / MARKER).write_text(str(state.step))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{_PREFIX}*") if (p / MARKER).is_file())


def load_latest(root: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> TrainingState | None:
    """Restore the newest complete checkpoint, if any; a partial one (no marker) is ignored."""
    found = complete_checkpoints(root)
    if not found:
        return None
    latest = found[-1]
    model.load_state_dict(torch.load(latest / "model.pt", weights_only=True), strict=False)
    opt = torch.load(latest / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    saved = torch.load(latest / "state.pt", weights_only=False)
    set_rng_state(saved["rng"])
    return TrainingState(**saved["state"])
