"""The same entry point on one process or many: ``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK and this
module joins the process group (gloo on CPU, nccl on GPU, xla on Neuron) and wraps the model.

Two strategies (``hyperparameters.distributed``): ``ddp`` keeps a full copy of the model on every device
and averages gradients; ``fsdp`` (FSDP2, ``fully_shard``) shards weights, gradients and optimizer state
over the processes, each decoder layer its own unit, for models whose training state does not fit one
device. Either way gradients arrive averaged over ranks, so the loop scales the loss the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule

from trainforge.errors import TrainingFailed


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

    def min(self, value: int) -> int:
        """The smallest of every rank's ``value``: ranks that must take the same decision take it from this."""
        if self.size == 1:
            return value
        found = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(found, op=dist.ReduceOp.MIN)
        return int(found[0])

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any: ranks must agree before a collective step."""
        if self.size == 1:
            return flag
        return bool(self.all_reduce_sum(torch.tensor([float(flag)]))[0] > 0)


def init_world(device_kind: str) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
    if size > 1 and not dist.is_initialized():
        # on GPUs the loop's bookkeeping (token counts, losses, flags) stays in CPU tensors: gloo carries
        # those, NCCL the gradients
        backend = {"cuda": "cpu:gloo,cuda:nccl", "neuron": "xla"}.get(device_kind, "gloo")
        if backend == "xla":
            import torch_xla.distributed.xla_backend  # type: ignore[import-not-found]  # noqa: F401
        dist.init_process_group(backend)
    return world


def wrap(model: torch.nn.Module, world: World, strategy: str, device: Any, bf16: bool) -> torch.nn.Module:
    """Returns the module the loop calls for training steps. For ``fsdp`` that is ``model`` itself, sharded
    in place (its parameters become DTensors on the device), so build the optimizer after this call."""
    if world.size == 1:
        return model.to(device)
    if strategy == "fsdp":
        return _fully_shard(model, world, device, bf16)
    model.to(device)
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _fully_shard(model: torch.nn.Module, world: World, device: Any, bf16: bool) -> torch.nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if device.type not in ("cpu", "cuda"):
        raise TrainingFailed(
            f"distributed: fsdp runs on cpu or cuda, not {device.type}; on Trainium use ddp "
            "(sharding there is NeuronX Distributed's, not FSDP)"
        )
    mesh = init_device_mesh(device.type, (world.size,))
    # all-gather bf16 weights and reduce gradients in fp32: half the traffic, full-precision updates
    policy = MixedPrecisionPolicy(torch.bfloat16, torch.float32) if bf16 else MixedPrecisionPolicy()
    # HF names the blocks that must not be split across devices: those are the sharding units
    blocks = set(getattr(_transformer(model), "_no_split_modules", None) or ())
    units = [module for module in model.modules() if type(module).__name__ in blocks]
    if not units:
        raise TrainingFailed(f"distributed: fsdp found no decoder blocks to shard in {type(model).__name__}")
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    # the root unit holds the rest (embeddings, final norm, the head tied to the embeddings)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _transformer(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (``get_base_model``), or the model itself."""
    get_base: Any = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@contextlib.contextmanager
def gradient_sync(wrapped: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter on all but the last micro-batch of an accumulation."""
    if enabled:
        yield
    elif isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        with wrapped.no_sync():
            yield
    elif isinstance(wrapped, FSDPModule):
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        yield


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def full_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """Collective: gathers a sharded model's full weights onto rank 0's CPU memory (empty on other ranks)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
