"""The same entry point on one process or many: ``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK and this
module joins the process group (gloo on CPU, nccl on GPU, xla on Neuron) and wraps the model."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world(device_kind: str) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
    if size > 1 and not dist.is_initialized():
        backend = {"cuda": "nccl", "neuron": "xla"}.get(device_kind, "gloo")
        if backend == "xla":
            import torch_xla.distributed.xla_backend  # type: ignore[import-not-found]  # noqa: F401
        dist.init_process_group(backend)
    return world


def wrap(model: torch.nn.Module, world: World, strategy: str, device: torch.device) -> torch.nn.Module:
    """DDP across processes (``strategy`` is ``hyperparameters.distributed``; ``ddp`` is the one built)."""
    if world.size == 1:
        return model
    assert strategy == "ddp", strategy
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
