"""A container's process group, its stop, and the failure reason SageMaker builds from its exit."""

from __future__ import annotations

import signal
import sys

from tests.twin.container import OUT_OF_MEMORY, Container, Exit, failure_reason


def run(code: str, tmp_path, env: dict[str, str] | None = None) -> tuple[Container, list[str]]:
    lines: list[str] = []
    return Container([sys.executable, "-c", code], env or {}, tmp_path, lines.append), lines


def test_output_streams_line_by_line_and_nothing_is_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_TEST_SECRET", "leaked")
    container, lines = run(
        "import os; print('one'); print(os.environ.get('TWIN_TEST_SECRET'), os.environ['ONLY'])",
        tmp_path,
        {"ONLY": "given"},
    )

    assert container.wait() == Exit(0, stopped=False)
    assert lines == ["one\n", "None given\n"]


def test_a_process_killed_by_sigkill_reads_as_docker_reads_it(tmp_path):
    container, _ = run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", tmp_path)

    exit = container.wait()

    assert exit == Exit(137, stopped=False)
    assert exit.oom_killed  # nobody asked for that SIGKILL: the kernel's OOM killer, in a container


def test_stop_sends_sigterm_then_sigkill_after_the_grace_period(tmp_path):
    container, lines = run(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('term', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
        tmp_path,
    )
    while not lines:
        pass

    container.stop(grace=0.5)
    exit = container.wait()

    assert lines == ["ready\n", "term\n"]
    assert exit == Exit(128 + signal.SIGKILL, stopped=True)
    assert not exit.oom_killed


def test_failure_reasons(tmp_path):
    failure = tmp_path / "failure"

    assert failure_reason(Exit(1, False), failure) == "AlgorithmError: , exit code: 1"
    failure.write_text("TrainingFailed: no base model\n")
    assert failure_reason(Exit(1, False), failure) == "AlgorithmError: TrainingFailed: no base model, exit code: 1"
    assert failure_reason(Exit(137, False), failure) == OUT_OF_MEMORY
    assert failure_reason(Exit(137, True), failure).endswith("exit code: 137")
    assert failure_reason(Exit(2, False), None) == "AlgorithmError: , exit code: 2"
    failure.write_text("x" * 5000)
    assert len(failure_reason(Exit(1, False), failure)) == 1024
