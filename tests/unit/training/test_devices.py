"""A job sent to an accelerator by its instance type fails loudly when the accelerator is not there."""

from __future__ import annotations

import sys

import pytest
import torch

from trainforge.errors import DeviceUnavailable
from trainforge.training.devices import select_device


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
