"""The same entry point on 2 processes (torchrun, gloo on CPU) matches 1 process with the same global batch.
The fixture's split leaves the two ranks different numbers of validation batches, so a validation pass
that synchronises ranks per batch would hang here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch


def losses(root):
    return [
        json.loads(line)["loss"]
        for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]


def test_two_process_torchrun_matches_single_process(opt_ml):
    common = {"max_steps": 4, "lora_dropout": 0.0, "eval_every": 2, "checkpoint_every": 100}
    single = opt_ml(name="single", batch_size=4, **common)
    double = opt_ml(name="double", batch_size=2, **common)  # 2 ranks x 2 = the same global batch of 4
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    entry = [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml"]
    subprocess.run([*entry, str(single)], check=True, env=env, capture_output=True)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "trainforge.training.entrypoint",
        "--opt-ml",
        str(double),
    ]
    # its own process group: on a timeout (a collective that never completes) the workers go too
    process = subprocess.Popen(
        torchrun, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]
    torch.testing.assert_close(torch.tensor(losses(double)), torch.tensor(losses(single)), rtol=1e-4, atol=1e-4)
    assert (double / "model" / "model.safetensors").is_file()
