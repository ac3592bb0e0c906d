"""One container, run as a process group: ``docker stop`` becomes SIGTERM to the group, then SIGKILL after
the grace period; the exit status reads as Docker reports it (128 + signal for a signalled process).

How SageMaker turns an exit into a ``FailureReason`` (the twin's one place for it):

- the container exits non-zero: ``AlgorithmError: <first 1 KB of /opt/ml/output/failure>, exit code: N``
  (an empty failure file reads ``AlgorithmError: , exit code: 1``);
  https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-signal-success-failure.html
- the kernel kills it for memory (SIGKILL that nobody asked for: exit code 137): SageMaker reports
  ``ClientError: Please use an instance type with more memory, or reduce the size of job data processed
  on an instance.``
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FAILURE_REASON_LIMIT = 1024  # DescribeTrainingJob FailureReason: at most 1024 characters
OUT_OF_MEMORY = (
    "ClientError: Please use an instance type with more memory, or reduce the size of job data processed on an "
    "instance."
)


@dataclass(frozen=True)
class Exit:
    code: int  # as Docker reports it: 0..255, 128 + signal number for a signalled process
    stopped: bool  # the twin sent the stop (StopTrainingJob, MaxRuntimeInSeconds), so a signal is expected

    @property
    def oom_killed(self) -> bool:
        return self.code == 128 + signal.SIGKILL and not self.stopped


def failure_reason(exit: Exit, failure_file: Path | None) -> str:
    """``failure_file``: /opt/ml/output/failure for training jobs; processing jobs have none (their
    container's words go to ExitMessage), so theirs read ``AlgorithmError: , exit code: N``."""
    if exit.oom_killed:
        return OUT_OF_MEMORY
    text = ""
    if failure_file is not None and failure_file.is_file():
        text = failure_file.read_text(errors="replace")[:FAILURE_REASON_LIMIT].strip()
    return f"AlgorithmError: {text}, exit code: {exit.code}"[:FAILURE_REASON_LIMIT]


class Container:
    """``argv`` run with exactly ``env`` (nothing inherited from the test process) in its own session."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, on_line: Callable[[str], None]) -> None:
        self._stopped = threading.Event()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, args=(on_line,), daemon=True, name=f"twin-log-{argv[0]}")
        self._reader.start()

    def _read(self, on_line: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            on_line(line)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> Exit:
        returncode = self.process.wait()
        self._signal(signal.SIGKILL)  # the container ends with its first process: nothing it started outlives it
        self._reader.join(timeout=10)
        code = 128 - returncode if returncode < 0 else returncode
        return Exit(code, self._stopped.is_set())

    def stop(self, grace: float) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after ``grace`` seconds (docker stop)."""
        self._stopped.set()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the group and wait for it, output included: nothing is left running or writing."""
        self._stopped.set()
        self._signal(signal.SIGKILL)
        self.process.wait()
        self._reader.join(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
