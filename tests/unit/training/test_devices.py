"""A job sent to an accelerator by its instance type fails loudly when the accelerator is not there."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from trainforge.errors import DeviceUnavailable
from trainforge.training import loop
from trainforge.training.devices import select_device
from trainforge.training.entrypoint import train_from_contract


def test_a_cuda_job_without_a_gpu_fails_naming_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailable, match="'cuda' was requested"):
        select_device("cuda", "auto")


def test_a_neuron_job_without_a_neuron_device_fails(monkeypatch):
    monkeypatch.delenv("NEURON_RT_VISIBLE_CORES", raising=False)
    monkeypatch.setattr("trainforge.training.devices.neuron_available", lambda: False)
    with pytest.raises(DeviceUnavailable, match="no Neuron device is present"):
        select_device("neuron", "auto")


def test_a_neuron_host_running_an_image_without_torch_xla_names_the_neuron_image(monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "0-31")
    monkeypatch.setitem(sys.modules, "torch_xla", None)  # import fails, as in the CUDA image
    with pytest.raises(DeviceUnavailable, match=r"Dockerfile\.neuron"):
        select_device("neuron", "auto")


def test_auto_on_a_plain_host_is_the_cpu(monkeypatch):
    monkeypatch.delenv("NEURON_RT_VISIBLE_CORES", raising=False)
    monkeypatch.setattr("trainforge.training.devices.neuron_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto", "fp32").kind == "cpu"


SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
EPYC_ROME = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def _cpu(monkeypatch, tmp_path, cpuinfo: str | None, probe: frozenset[str] = frozenset()):
    """A faked CPU: its /proc/cpuinfo text (None: no such file) and what torch's CPUID probe would say."""
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    monkeypatch.setattr("trainforge.training.cpu_features.CPUINFO", path)
    monkeypatch.setattr("trainforge.training.cpu_features.torch_flags", lambda: probe)


def test_auto_on_a_cpu_with_native_bf16_trains_in_bf16_and_says_why(monkeypatch, tmp_path):
    _cpu(monkeypatch, tmp_path, SAPPHIRE_RAPIDS)
    device = select_device("cpu", "auto")
    assert device.bf16
    assert "amx_bf16, avx512_bf16 in" in device.precision_reason and "cpuinfo" in device.precision_reason


def test_auto_on_a_cpu_without_native_bf16_stays_fp32(monkeypatch, tmp_path):
    _cpu(monkeypatch, tmp_path, EPYC_ROME, probe=frozenset({"amx_bf16"}))  # the flags line wins over the probe
    device = select_device("cpu", "auto")
    assert not device.bf16
    assert "no amx_bf16 or avx512_bf16" in device.precision_reason and "emulated" in device.precision_reason


def test_without_a_flags_line_torchs_probe_decides(monkeypatch, tmp_path):
    _cpu(monkeypatch, tmp_path, None, probe=frozenset({"avx512_bf16"}))
    device = select_device("cpu", "auto")
    assert device.bf16 and "avx512_bf16 in torch's CPU probe" in device.precision_reason
    _cpu(monkeypatch, tmp_path, "processor\t: 0\nFeatures\t: fp asimd\n", probe=frozenset())
    assert not select_device("cpu", "auto").bf16


def test_an_explicit_precision_is_kept_whatever_the_cpu(monkeypatch, tmp_path):
    _cpu(monkeypatch, tmp_path, SAPPHIRE_RAPIDS)
    assert not select_device("cpu", "fp32").bf16
    _cpu(monkeypatch, tmp_path, EPYC_ROME)
    assert select_device("cpu", "bf16").bf16


def test_a_cpu_job_under_auto_logs_why_and_its_bf16_losses_track_fp32(monkeypatch, tmp_path, opt_ml):
    """On a native-bf16 CPU the whole step (fused adapter, per-document attention, chunked loss) runs under
    autocast; its losses stay within the bf16 tolerance of the adapter's parity test (3e-2) of fp32's. The bf16
    run alone holds a bf16 copy of the adapter's frozen base weights, made once for the run."""
    _cpu(monkeypatch, tmp_path, SAPPHIRE_RAPIDS)
    held, hold = [], loop.hold_frozen_base
    monkeypatch.setattr(loop, "hold_frozen_base", lambda model, dtype: held.append((dtype, hold(model, dtype))))
    settings = {"max_steps": 4, "eval_every": 100, "device": "cpu"}
    runs = {precision: opt_ml(name=precision, precision=precision, **settings) for precision in ("fp32", "auto")}
    records = {}
    for precision, root in runs.items():
        train_from_contract(root)
        lines = (root / "checkpoints/metrics.jsonl").read_text().splitlines()
        records[precision] = [json.loads(line) for line in lines]
    event = next(r for r in records["auto"] if r.get("event") == "precision")
    assert event["device"] == "cpu" and event["bf16"] is True
    assert event["reason"].startswith("precision auto on cpu: bf16, amx_bf16, avx512_bf16 in ")
    bf16, fp32 = ([r["loss"] for r in records[p] if "loss" in r] for p in ("auto", "fp32"))
    assert bf16 != fp32  # autocast was on
    torch.testing.assert_close(torch.tensor(bf16), torch.tensor(fp32), rtol=3e-2, atol=3e-2)
    assert len(held) == 1 and held[0][0] == torch.bfloat16 and held[0][1] > 0


def test_auto_on_a_gpu_without_native_bf16_is_fp32(monkeypatch):
    """ml.g4dn (T4) and ml.p3 (V100) emulate bf16: auto keeps fp32 there."""
    from trainforge.training.devices import bf16_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert bf16_precision("cuda", "auto") == (False, "precision auto on cuda: fp32, this GPU has no native bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert bf16_precision("cuda", "auto")[0] is True
