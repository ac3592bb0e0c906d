"""What training and processing jobs share: a job runs in its own thread after moto has recorded the
request, in a folder of its own that stands in for the instance (``opt/ml`` beneath it), and publishes its
progress onto moto's record of the job, so that every Describe* (from a test, a Lambda handler or the state
machine) reads the same state.

The one documented deviation: SageMaker mounts the job's files at /opt/ml; the twin cannot, so it passes
the folder standing in for it as ``TRAINFORGE_OPT_ML`` (training) or ``TRAINFORGE_PROCESSING_ROOT``
(processing), the variables the product's entry points read their roots from.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from tests.twin import storage
from tests.twin.container import Container, Exit
from tests.twin.logs import LogStream
from tests.twin.venvs import Runtime

if TYPE_CHECKING:
    from tests.twin.twin import SageMakerTwin

OPT_ML = PurePosixPath("/opt/ml")
#: SageMaker sends SIGTERM and waits 120 s before it ends a stopped job (StopTrainingJob API reference:
#: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html)
STOP_GRACE_SECONDS = 120.0


def now() -> datetime:
    return datetime.now(UTC)


def container_environment(runtime: Runtime, folder: Path, *layers: dict[str, str]) -> dict[str, str]:
    """What ``docker run`` gives the process: the image's ENV, then each of ``layers`` (the request's
    Environment, SageMaker's variables) on top; nothing from the test process."""
    home = folder / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in runtime.recipe.env.items() if name != "PATH"}
    env.update(PATH=runtime.path, HOME=str(home), TMPDIR=str(home / "tmp"), LANG="C.UTF-8")
    for layer in layers:
        env.update(layer)
    return env


class Published:
    """A resource whose state lives on moto's record of it (``record``), which every Describe reads."""

    record: Any

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def publish(self, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(self.record, name, value)
            self.record.last_modified_time = now()


class Background(Published):
    """A job whose work runs in a thread of its own (``run``); an exception there is the twin's own failure,
    which ``finish_failed`` writes onto the record as SageMaker reports its own."""

    def __init__(self, thread_name: str) -> None:
        super().__init__()
        self.thread = threading.Thread(target=self._main, daemon=True, name=thread_name)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception as error:
            traceback.print_exc()
            self.finish_failed(f"InternalServerError: the SageMaker twin failed: {type(error).__name__}: {error}")

    def run(self) -> None:
        raise NotImplementedError

    def finish_failed(self, reason: str) -> None:
        raise NotImplementedError


class ContainerJob(Background):
    """Subclasses run the job (``run``: lay out the instance, ``run_container``, upload), say how a stop
    and the twin's own failure read on the record (``stopping``, ``finish_failed``) and which record field
    holds the status (``status_field``)."""

    kind = ""  # "TrainingJob" / "ProcessingJob": the API's noun
    log_group = ""
    status_field = ""  # the moto record's attribute holding the primary status

    def __init__(self, twin: SageMakerTwin, request: dict[str, Any], record: Any, region: str) -> None:
        super().__init__(f"twin-{self.kind}-{request[f'{self.kind}Name']}")
        self.twin = twin
        self.request = request
        self.record = record
        self.name: str = request[f"{self.kind}Name"]
        self.arn: str = record.arn
        self.s3 = storage.client("s3", region)
        self.logs = storage.client("logs", region)
        self.folder = twin.workdir / f"{self.kind}-{self.name}"
        self.opt_ml = self.folder / "opt" / "ml"
        self.container: Container | None = None
        self.stop_cause = ""  # why the twin stopped the container ("" while nobody asked)

    @property
    def status(self) -> str:
        return str(getattr(self.record, self.status_field))

    # --- the instance
    def local(self, container_path: str) -> Path:
        """Where a container path under /opt/ml lives in the job's folder (other paths under ``rootfs``)."""
        path = PurePosixPath(container_path)
        if path == OPT_ML or OPT_ML in path.parents:
            return self.opt_ml / path.relative_to(OPT_ML)
        return self.folder / "rootfs" / path.relative_to("/")

    def environment(self, runtime: Runtime, *layers: dict[str, str]) -> dict[str, str]:
        return container_environment(runtime, self.folder, *layers)

    # --- the run
    def run_container(
        self,
        argv: list[str],
        env: dict[str, str],
        on_line: Callable[[str], None],
        tick: Callable[[], None] | None = None,
    ) -> Exit:
        """Run to the end, enforcing ``StoppingCondition.MaxRuntimeInSeconds``; ``tick`` runs every second
        (checkpoint sync). A stop requested before the start never starts the container."""
        limit = float(self.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.stop_cause:
                return Exit(128 + 15, stopped=True)
            self.container = Container(argv, env, self.folder, on_line)
        started = time.monotonic()
        last_tick = started
        while self.container.running:
            time.sleep(0.1)
            if time.monotonic() - started > limit and not self.stop_cause:
                self.stop("MaxRuntimeExceeded")
            if tick is not None and time.monotonic() - last_tick >= 1.0:
                tick()
                last_tick = time.monotonic()
        return self.container.wait()

    def stop(self, cause: str = "Stopped") -> None:
        """Stopping now; SIGTERM, then SIGKILL after the grace period, in the background."""
        with self._lock:
            if self.stop_cause:
                return
            self.stop_cause = cause
            container = self.container
        self.stopping()
        if container is not None:
            threading.Thread(target=container.stop, args=(self.twin.stop_grace_seconds,), daemon=True).start()

    def stopping(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Teardown (the twin is uninstalled): the process goes at once, the thread is left to end."""
        with self._lock:
            self.stop_cause = self.stop_cause or "Stopped"
            container = self.container
        if container is not None:
            container.kill()
        self.thread.join(timeout=30)

    def seconds_since(self, start: datetime) -> int:
        return max(1, int((now() - start).total_seconds()))

    def open_stream(self) -> LogStream:
        return LogStream(self.logs, self.log_group, f"{self.name}/algo-1-{int(time.time())}")

    def download(self, uri: str, target: Path) -> int:
        return storage.download_prefix(self.s3, uri, target)
