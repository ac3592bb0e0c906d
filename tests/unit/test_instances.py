"""The instance table: the facts the pipeline decides images, processes and volume keys from."""

from __future__ import annotations

import pytest

from trainforge.errors import SpecInvalid
from trainforge.instances import (
    INSTANCE_TYPES,
    ebs_only_type_patterns,
    instance_type,
    nvme_type_patterns,
    smallest_fitting,
)


@pytest.mark.parametrize(
    ("name", "accelerator", "processes", "nvme"),
    [
        ("ml.g5.2xlarge", "cuda", 1, True),
        ("ml.g5.48xlarge", "cuda", 8, True),
        ("ml.p4d.24xlarge", "cuda", 8, True),
        ("ml.trn1.32xlarge", "neuron", 32, True),
        ("ml.trn1.2xlarge", "neuron", 2, True),
        ("ml.trn2.48xlarge", "neuron", 64, True),
        ("ml.m5.xlarge", "cpu", 1, False),
        ("ml.p3.2xlarge", "cuda", 1, False),
    ],
)
def test_known_types(name, accelerator, processes, nvme):
    t = instance_type(name)
    assert (t.accelerator, t.processes_per_node, t.local_nvme) == (accelerator, processes, nvme)


def test_an_unknown_type_is_a_spec_error_naming_the_families():
    with pytest.raises(SpecInvalid, match=r"unknown SageMaker instance type 'ml\.g5\.3xlarge'.*g5"):
        instance_type("ml.g5.3xlarge")


def test_storage_patterns_partition_the_families():
    nvme, ebs = set(nvme_type_patterns()), set(ebs_only_type_patterns())
    assert not nvme & ebs
    assert {f"ml.{t.family}.*" for t in INSTANCE_TYPES.values()} == nvme | ebs
    assert "ml.m5.*" in ebs and "ml.g5.*" in nvme and "ml.trn1.*" in nvme


def test_smallest_fitting_single_gpu_has_native_bf16():
    assert smallest_fitting(1).name in ("ml.g5.xlarge", "ml.g6.xlarge")  # the T4 of ml.g4dn has no bf16
    assert smallest_fitting(1, bf16=False).name == "ml.g4dn.xlarge"
    assert smallest_fitting(30).name == "ml.g6e.xlarge"
    with pytest.raises(SpecInvalid):
        smallest_fitting(500)
