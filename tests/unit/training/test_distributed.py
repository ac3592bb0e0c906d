"""The same entry point on 2 processes (torchrun, gloo on CPU) matches 1 process with the same global batch,
for both strategies: ``ddp`` (a model copy per process) and ``fsdp`` (FSDP2, everything sharded). The
fixture's split leaves the two ranks different numbers of validation batches, so a validation pass that
lets ranks run different numbers of forwards would hang here (FSDP all-gathers weights in every forward)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.unit.training.conftest import build_opt_ml
from trainforge.training.entrypoint import train_from_contract

COMMON = {"max_steps": 4, "lora_dropout": 0.0, "eval_every": 2, "checkpoint_every": 2}


def metrics(root, key):
    records = [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]
    return [record[key] for record in records if key in record]


def run_workers(command, **env):
    """Run a multi-process job in its own process group; on a timeout (a collective that never
    completes) it is killed with its workers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        kill_job(process)
        raise
    assert process.returncode == 0, stderr[-3000:]


def workers_of(process):
    return [
        int(pid)
        for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    ]


def kill_job(process):
    """torchrun starts each worker in a session of its own: kill those as well as torchrun's group."""
    for worker in workers_of(process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGKILL)


def entry_point(root):
    return ["-m", "trainforge.training.entrypoint", "--opt-ml", str(root)]


def torchrun(root):
    run_workers(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *entry_point(root)]
    )


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, tiny_model_dir):
    """The reference: one process, the global batch of 4 in one micro-batch."""
    root = build_opt_ml(tmp_path_factory.mktemp("single") / "opt_ml", tiny_model_dir, batch_size=4, **COMMON)
    train_from_contract(root)
    return root


def assert_same_training(actual, expected):
    for key in ("loss", "eval_loss", "grad_norm"):
        torch.testing.assert_close(
            torch.tensor(metrics(actual, key)), torch.tensor(metrics(expected, key)), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize(
    ("strategy", "checkpointing"),
    [("ddp", False), ("fsdp", False), ("fsdp", True)],  # checkpointed blocks are sharding units: re-gathered
)
def test_two_processes_match_one(strategy, checkpointing, tmp_path, tiny_model_dir, single_process):
    # 2 ranks x 2 = the same global batch of 4; the reference does not checkpoint
    double = build_opt_ml(
        tmp_path / "opt_ml",
        tiny_model_dir,
        batch_size=2,
        distributed=strategy,
        gradient_checkpointing=checkpointing,
        **COMMON,
    )
    torchrun(double)
    assert_same_training(double, single_process)
    assert min(metrics(double, "grad_norm")) > 0  # the optimizer holds the parameters that get gradients
    # the export gathers every shard: the same merged weights as the single-process run
    expected = load_file(single_process / "model/model.safetensors")
    actual = load_file(double / "model/model.safetensors")
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_a_sharded_full_fine_tune_trains_the_tied_head_like_one_process(tmp_path, tiny_model_dir):
    """Full fine-tune: the head, tied to the embeddings, is trainable and applied to the labelled positions
    outside the model's forward; under FSDP its gradient must still be reduced across the shards."""
    single = build_opt_ml(tmp_path / "single", tiny_model_dir, method="full", batch_size=4, **COMMON)
    train_from_contract(single)
    double = build_opt_ml(
        tmp_path / "double", tiny_model_dir, method="full", batch_size=2, distributed="fsdp", **COMMON
    )
    torchrun(double)
    assert_same_training(double, single)
    expected = load_file(single / "model/model.safetensors")
    actual = load_file(double / "model/model.safetensors")
    torch.testing.assert_close(actual["model.embed_tokens.weight"], expected["model.embed_tokens.weight"])


def test_sharded_checkpoint_resumes_on_a_different_number_of_processes(tmp_path, tiny_model_dir, single_process):
    """Written by 2 FSDP ranks at step 2, resumed by 1 process: the checkpoint is resharded on load."""
    root = build_opt_ml(tmp_path / "opt_ml", tiny_model_dir, batch_size=2, distributed="fsdp", **COMMON)
    torchrun(root)
    assert len(list((root / "checkpoints/step-00000002").glob("*.distcp"))) == 2  # one shard file per rank
    # as if the job had died during step 3: carry on from step 2 in one process (global batch of 4 in one)
    shutil.rmtree(root / "checkpoints/step-00000004")
    shutil.rmtree(root / "model")
    hyper = json.loads((root / "input/config/hyperparameters.json").read_text())
    hyper.update(batch_size="4", distributed='"ddp"')
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hyper))
    train_from_contract(root)
    assert "resumed" in [record.get("event") for record in map(json.loads, (root / "checkpoints/metrics.jsonl").open())]
    torch.testing.assert_close(
        torch.tensor(metrics(root, "loss")[-2:]),
        torch.tensor(metrics(single_process, "loss")[-2:]),
        rtol=1e-4,
        atol=1e-4,
    )


def test_the_entry_point_starts_one_worker_per_device_itself(tmp_path, tiny_model_dir):
    """SageMaker runs ``IMAGE train`` once per instance: the entry point becomes torchrun when it sees
    more than one device (here: told so, on CPU)."""
    root = build_opt_ml(tmp_path / "opt_ml", tiny_model_dir, batch_size=2, **{**COMMON, "max_steps": 2})
    run_workers([sys.executable, *entry_point(root)], TRAINFORGE_NPROC_PER_NODE="2")
    lineage = json.loads((root / "model/trainforge.json").read_text())
    assert lineage["processes"] == 2


def test_several_instances_rendezvous_at_the_first_host(tmp_path, monkeypatch):
    from trainforge.training.launch import torchrun_command

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("TRAINFORGE_NPROC_PER_NODE", "8")
    config = tmp_path / "input/config/resourceconfig.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    command = torchrun_command(tmp_path, ["--opt-ml", str(tmp_path)])
    assert command is not None
    assert command[command.index("-m") + 1 :][:5] == [
        "torch.distributed.run",
        "--nproc_per_node=8",
        "--nnodes=2",
        "--node_rank=1",
        "--master_addr=algo-1",
    ]
    assert command[-3:] == ["trainforge.training.entrypoint", "--opt-ml", str(tmp_path)]
    monkeypatch.setenv("RANK", "3")  # a worker trains in its own process
    assert torchrun_command(tmp_path, []) is None


def test_a_job_placed_on_a_missing_accelerator_fails_before_starting_a_worker_per_core(tmp_path, monkeypatch):
    """ml.trn1.32xlarge promises 32 NeuronCores: without them the job must fail once, with its reason in the
    failure file, not start 32 workers that each import torch and fail."""
    from trainforge.training import entrypoint

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("NEURON_RT_VISIBLE_CORES", raising=False)
    monkeypatch.setattr("trainforge.training.devices.neuron_available", lambda: False)
    monkeypatch.setenv("TRAINFORGE_NPROC_PER_NODE", "32")
    config = tmp_path / "input/config/hyperparameters.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"device": '"neuron"'}))
    monkeypatch.setattr(entrypoint.os, "execv", lambda *args: pytest.fail(f"started workers: {args}"))
    assert entrypoint.main(["--opt-ml", str(tmp_path)]) == 1
    assert (tmp_path / "output/failure").read_text().startswith("DeviceUnavailable: device 'neuron' was requested")


def test_a_sigterm_on_one_rank_stops_every_rank_at_the_same_checkpoint(tmp_path, tiny_model_dir):
    """A spot reclaim's SIGTERM can reach one worker a step before another; ranks that disagreed on
    whether to checkpoint would each wait in a different collective, for ever."""
    root = build_opt_ml(
        tmp_path / "opt_ml", tiny_model_dir, batch_size=2, max_steps=400, checkpoint_every=1000, eval_every=1000
    )  # no validation before the end: a new best loss would write a checkpoint of its own
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *entry_point(root)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line).get("step") == 2:
                break
        workers = workers_of(process)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGTERM)  # one worker only
        process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_job(process)
        raise
    assert process.returncode != 0
    assert "interrupted by SIGTERM" in (root / "output/failure").read_text()
    checkpoints = list((root / "checkpoints").glob("step-*/COMPLETE"))
    assert len(checkpoints) == 1
    assert len(list(checkpoints[0].parent.glob("rng-*.pt"))) == 2  # both ranks wrote their part
