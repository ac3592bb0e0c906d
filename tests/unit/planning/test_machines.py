"""This machine's cores as the plan counts them: from the kernel's topology, not from a vCPU rule."""

from pathlib import Path

from trainforge.planning.machines import cpu_cores, physical_cores


def _topology(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, listed in siblings.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(listed + "\n")
    return root


def test_one_thread_per_core_counts_every_cpu(tmp_path: Path) -> None:
    sysfs = _topology(tmp_path, {0: "0", 1: "1"})
    assert physical_cores([0, 1], sysfs) == 2


def test_hyperthreads_of_one_core_count_once(tmp_path: Path) -> None:
    sysfs = _topology(tmp_path, {0: "0-1", 1: "0-1", 2: "2,3", 3: "2,3"})
    assert physical_cores([0, 1, 2, 3], sysfs) == 2
    assert physical_cores([0, 1], sysfs) == 1


def test_no_topology_says_so_and_the_ec2_rule_applies(tmp_path: Path) -> None:
    assert physical_cores([0, 1], tmp_path) is None
    assert cpu_cores(2) == 1 and cpu_cores(8) == 4
