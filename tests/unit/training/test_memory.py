"""Memory-aware training: the device's memory as read, peaks in the metrics, settings fitted before training
(same effective batch, same losses), a run that cannot fit refused with the numbers, and activation
checkpointing that trains exactly as without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.unit.training.conftest import qa_rows
from trainforge.planning import estimate_peak
from trainforge.planning.memory import HEADROOM, MiB
from trainforge.training import memory
from trainforge.training.config import TrainConfig
from trainforge.training.devices import Device
from trainforge.training.entrypoint import main, train_from_contract
from trainforge.training.memory import Capacity, PeakMemory, host_capacity, model_shape

CPU = Device("cpu", torch.device("cpu"), False)


def records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]


def fake_proc(folder: Path, available_kb: int, rss_kb: int = 300_000, hwm_kb: int = 500_000) -> Path:
    (folder / "self").mkdir(parents=True)
    (folder / "meminfo").write_text(f"MemTotal: 24000000 kB\nMemFree: 1000 kB\nMemAvailable: {available_kb} kB\n")
    (folder / "self" / "status").write_text(f"Name: python\nVmHWM:\t{hwm_kb} kB\nVmRSS:\t{rss_kb} kB\n")
    (folder / "self" / "clear_refs").write_text("")
    return folder


def test_host_capacity_is_own_rss_plus_what_is_available_capped_by_the_cgroup(tmp_path):
    proc = fake_proc(tmp_path / "proc", available_kb=20_000_000)
    no_limit = tmp_path / "cgroup-none"
    no_limit.mkdir()
    (no_limit / "memory.max").write_text("max\n")
    (no_limit / "memory.current").write_text("1000\n")
    assert host_capacity(1, proc, no_limit).bytes == (300_000 + 20_000_000) * 1024
    limited = tmp_path / "cgroup-v2"
    limited.mkdir()
    (limited / "memory.max").write_text(str(8 << 30))
    (limited / "memory.current").write_text(str(2 << 30))
    capacity = host_capacity(1, proc, limited)
    assert capacity.bytes == 300_000 * 1024 + (6 << 30)
    assert "cgroup limit 8.00 GiB" in capacity.source
    # two processes training on one host share what is left
    assert host_capacity(2, proc, limited).bytes == 300_000 * 1024 + (3 << 30)


def test_cpu_peaks_are_the_rss_high_water_mark_reset_after_each_reading(tmp_path):
    proc = fake_proc(tmp_path / "proc", available_kb=1, hwm_kb=700_000)
    peaks = PeakMemory(CPU, proc)
    assert (proc / "self" / "clear_refs").read_text() == "5"  # reset when the tracker starts
    assert peaks.step() == 700_000 * 1024
    (proc / "self" / "status").write_text("VmHWM:\t900000 kB\nVmRSS:\t1 kB\n")
    assert peaks.interval() == 900_000 * 1024 and peaks.run == 900_000 * 1024
    (proc / "self" / "status").write_text("VmHWM:\t400000 kB\nVmRSS:\t1 kB\n")
    assert peaks.interval() == 400_000 * 1024  # the interval restarted; the run's peak did not
    assert peaks.run == 900_000 * 1024


def test_the_run_reports_its_peak_memory_per_step_and_per_evaluation(opt_ml):
    root = opt_ml(max_steps=4, eval_every=2)
    summary = train_from_contract(root)
    steps = [r for r in records(root) if "loss" in r]
    evaluations = [r for r in records(root) if "eval_loss" in r]
    assert all(r["peak_memory_mb"] > 100 for r in steps + evaluations)
    assert summary["memory"]["peak_mb"] >= max(r["peak_memory_mb"] for r in steps)
    event = next(r for r in records(root) if r.get("event") == "memory")
    assert event["device"] == "cpu" and event["estimate_mb"] < event["budget_mb"] < event["capacity_mb"]


def squeeze(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """The host as if the run's budget were ``budget`` bytes."""
    capacity = Capacity(int(budget / HEADROOM["cpu"]) + 1, "test")
    monkeypatch.setattr(memory, "device_capacity", lambda device, processes=1: capacity)


def test_a_micro_batch_too_large_for_memory_is_split_and_trains_the_same(opt_ml, tiny_model_dir, monkeypatch):
    """With the budget of micro-batch 2, a spec asking for 4 trains 2 x 2: logged, recorded in the lineage,
    and the same losses as the spec's own setting (the effective batch is the same)."""
    hyper = {"max_steps": 3, "batch_size": 4, "max_seq_len": 256, "eval_every": 3, "lora_dropout": 0.0}
    rows = qa_rows(160)
    reference = opt_ml(rows=rows, name="reference", **hyper)
    train_from_contract(reference)
    config = TrainConfig(**hyper, lora_rank=4)
    shape = model_shape(tiny_model_dir)
    two = estimate_peak(
        shape, config.model_copy(update={"batch_size": 2, "grad_accum": 2}), "lora", device="cpu", bf16=False
    )
    squeeze(monkeypatch, two.total)
    squeezed = opt_ml(rows=rows, name="squeezed", **hyper)
    summary = train_from_contract(squeezed)
    adjusted = [r for r in records(squeezed) if r.get("event") == "adjusted"]
    assert [(r["setting"], r["from"], r["to"]) for r in adjusted] == [("batch_size", 4, 2), ("grad_accum", 1, 2)]
    assert all(r["reason"] for r in adjusted)
    lineage = json.loads((squeezed / "model/trainforge.json").read_text())
    assert lineage["hyperparameters"]["batch_size"] == 2 and lineage["hyperparameters"]["grad_accum"] == 2
    assert lineage["memory"]["requested"]["batch_size"] == 4
    assert [a["setting"] for a in lineage["memory"]["adjustments"]] == ["batch_size", "grad_accum"]
    expected = [r["loss"] for r in records(reference) if "loss" in r]
    actual = [r["loss"] for r in records(squeezed) if "loss" in r]
    torch.testing.assert_close(torch.tensor(actual), torch.tensor(expected), rtol=1e-4, atol=1e-4)
    assert summary["steps"] == 3


def test_a_run_that_cannot_fit_fails_before_training_with_the_numbers(opt_ml, monkeypatch):
    squeeze(monkeypatch, 50 * MiB)  # less than the runtime alone
    root = opt_ml(max_steps=2)
    assert main(["--opt-ml", str(root)]) == 1
    failure = (root / "output/failure").read_text()
    assert failure.startswith("OutOfMemory: before training: training needs an estimated")
    assert "even micro-batch 1 with gradient checkpointing needs" in failure
    assert not any("loss" in r for r in records(root))  # no step ran


@pytest.mark.parametrize("method", ["lora", "full"])
def test_activation_checkpointing_trains_exactly_as_without(opt_ml, method):
    """Through the packed per-example attention, the fused adapter (with dropout: the recomputed forward
    must draw the same mask) and the lean MLP; tolerance of the distributed parity tests."""
    settings = {"method": method, "max_steps": 4, "eval_every": 2, "lora_dropout": 0.1}
    plain = opt_ml(name="plain", **settings)
    train_from_contract(plain)
    checkpointed = opt_ml(name="checkpointed", gradient_checkpointing=True, **settings)
    train_from_contract(checkpointed)
    for key in ("loss", "eval_loss", "grad_norm"):
        expected = [r[key] for r in records(plain) if key in r]
        actual = [r[key] for r in records(checkpointed) if key in r]
        assert len(actual) == len(expected) > 0
        torch.testing.assert_close(torch.tensor(actual), torch.tensor(expected), rtol=1e-4, atol=1e-4)


def test_the_estimate_is_within_a_quarter_of_a_measured_peak(tmp_path):
    """A small Llama (hidden 256, 4 layers) at 8 x 256 tokens, one step of ``trainforge-train`` in a process of
    its own (a test process's RSS would count pytest): the activations are a fifth of its peak, the rest is
    the runtime. The SmolLM2 figures are in docs/benchmarks.md (benchmarks/train_memory.py)."""
    from tests.unit.training.conftest import build_opt_ml
    from trainforge.training.tiny import build_tiny_model

    base = build_tiny_model(tmp_path / "small-llama", hidden_size=256, layers=4)
    root = build_opt_ml(
        tmp_path / "opt_ml", base, qa_rows(600), max_steps=1, batch_size=8, max_seq_len=256, lora_rank=16,
        validation_fraction=0.0, precision="fp32",
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(root)], check=True)
    event = next(r for r in records(root) if r.get("event") == "memory")
    peak = next(r["peak_memory_mb"] for r in records(root) if "loss" in r)
    assert event["estimate_parts_mb"]["activations"] > event["estimate_mb"] / 6
    assert 0.75 <= peak / event["estimate_mb"] <= 1.25, (peak, event)
