"""Planning a training run before it starts, without torch: what the base model's config and the job's
hyperparameters say about its memory. The training container fits its settings with it, and a planner
that runs where torch is not installed (a Lambda) can use the very same estimate."""

from trainforge.planning.architecture import ModelShape, UnknownArchitecture
from trainforge.planning.memory import (
    Adjustment,
    MemoryEstimate,
    MemoryFit,
    estimate_peak,
    fit_to_memory,
    memory_facts,
)

__all__ = (
    "Adjustment",
    "MemoryEstimate",
    "MemoryFit",
    "ModelShape",
    "UnknownArchitecture",
    "estimate_peak",
    "fit_to_memory",
    "memory_facts",
)
