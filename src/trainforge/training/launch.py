"""One training process per device: SageMaker starts ``IMAGE train`` once per instance, so on an
instance with several GPUs (ml.g5.12xlarge, ml.p4d, ml.p5) or on several instances the entry point
starts ``torchrun`` itself, which then runs the entry point once per device as a worker.

How many processes per node: ``$TRAINFORGE_NPROC_PER_NODE`` when set, otherwise the number of visible
CUDA devices. Neuron hosts set it (e.g. 32 on ml.trn1.32xlarge, one process per NeuronCore). Nodes come
from SageMaker's ``/opt/ml/input/config/resourceconfig.json`` (``hosts``, ``current_host``); the first host
is the rendezvous point.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from trainforge.training.devices import require

RENDEZVOUS_PORT = 29500


def processes_per_node() -> int:
    configured = os.environ.get("TRAINFORGE_NPROC_PER_NODE")
    if configured:
        return int(configured)
    import torch

    return max(1, torch.cuda.device_count())


def _placed_on(root: Path) -> str:
    """The device the job's instance type promises (the ``device`` hyperparameter), ``auto`` when unset."""
    path = root / "input/config/hyperparameters.json"
    raw = json.loads(path.read_text()).get("device", '"auto"') if path.is_file() else '"auto"'
    return str(json.loads(raw) if isinstance(raw, str) and raw.startswith('"') else raw)


def hosts(root: Path) -> tuple[list[str], str]:
    """(every host of the job, this host), from the resource config SageMaker writes; one host locally."""
    config = root / "input/config/resourceconfig.json"
    if not config.is_file():
        return ["localhost"], "localhost"
    resources = json.loads(config.read_text())
    return list(resources["hosts"]), str(resources["current_host"])


def torchrun_command(root: Path, argv: list[str]) -> list[str] | None:
    """The command that runs this job as torchrun workers, or None to train in this process (one device,
    one host, or already a worker: torchrun sets ``RANK``)."""
    if "RANK" in os.environ:
        return None
    per_node = processes_per_node()
    all_hosts, current = hosts(root)
    if per_node == 1 and len(all_hosts) == 1:
        return None
    require(_placed_on(root))  # before a worker per NeuronCore or GPU is started, each to fail the same way
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={per_node}"]
    if len(all_hosts) == 1:
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={len(all_hosts)}",
            f"--node_rank={all_hosts.index(current)}",
            f"--master_addr={all_hosts[0]}",
            f"--master_port={RENDEZVOUS_PORT}",
        ]
    return [*command, "-m", "trainforge.training.entrypoint", *argv]
