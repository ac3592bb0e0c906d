"""The same entry point on 2 processes (torchrun, gloo on CPU) matches 1 process with the same global batch."""

from __future__ import annotations

import json
import os
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
    result = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.tensor(losses(double)), torch.tensor(losses(single)), rtol=1e-4, atol=1e-4)
    assert (double / "model" / "model.safetensors").is_file()
