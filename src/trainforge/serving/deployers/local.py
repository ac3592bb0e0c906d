"""LocalDeployer: an endpoint on this machine, as a managed background process serving every variant of its
record (``serving.variants``), its URL recorded in the workspace.

``deployments/NAME.json`` is the endpoint's record (which versions, what share of traffic, which is
champion; ``serving.rollout``), ``deployments/NAME.process.json`` the process serving it (URL, pid, log).
Applying a new record to a running endpoint re-reads it in place (SIGHUP): weights move at once, a new
version is loaded beside the others, and the deployer waits until the new layout answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from trainforge.errors import TrainForgeError
from trainforge.serving.rollout import EndpointRecord, load_record, record_uri, save_record
from trainforge.serving.variants import LAYOUT_HEADER, TARGET_HEADER


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port")


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs. A server this process started is its child: once it exits it is reaped
    here, or it would linger as a zombie that ``kill(pid, 0)`` still finds (and ``stop`` would wait 15 s)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class LocalDeployer:
    def __init__(
        self, workspace: Path, port: int = 8000, api_key: str | None = None, startup_timeout: float = 180.0
    ) -> None:
        self.root = workspace.resolve().as_uri()
        self.folder = workspace / "deployments"
        self.port = port
        self.api_key = api_key
        self.startup_timeout = startup_timeout

    # --- the process
    def record(self, name: str) -> dict[str, Any] | None:
        """The process serving the endpoint: name, url, pid, log, started."""
        path = self.folder / f"{name}.process.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def running(self, name: str) -> dict[str, Any] | None:
        process = self.record(name)
        return process if process and _alive(int(process["pid"])) else None

    def stop(self, name: str) -> None:
        process = self.running(name)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(process["pid"]), signal.SIGTERM)
        deadline = time.time() + 15
        while _alive(int(process["pid"])) and time.time() < deadline:
            time.sleep(0.1)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _serving(self, url: str, layout: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"{url}/ping", timeout=2)
            return answer.status_code == 200 and answer.headers.get(LAYOUT_HEADER.decode()) == layout
        return False

    def _wait(self, url: str, layout: str, process: subprocess.Popen[bytes] | None, log: Path) -> None:
        deadline = time.time() + self.startup_timeout
        while not self._serving(url, layout):
            if process is not None and process.poll() is not None:
                raise TrainForgeError(f"the model server exited with code {process.returncode}; see {log}")
            if time.time() > deadline:
                if process is not None:
                    process.terminate()
                raise TrainForgeError(
                    f"the model server did not serve the new layout within {self.startup_timeout:.0f} s; see {log}"
                )
            time.sleep(0.3)

    def _start(self, record: EndpointRecord) -> None:
        port = free_port(self.port)
        url = f"http://127.0.0.1:{port}"
        log = self.folder / f"{record.name}.log"
        path = self.folder / f"{record.name}.json"
        command = [sys.executable, "-m", "trainforge.cli", "serve", "--endpoint", str(path), "--port", str(port)]
        env = {**os.environ, **({"TRAINFORGE_API_KEY": self.api_key} if self.api_key else {})}
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        self._wait(url, record.layout_key(), process, log)
        details = {"name": record.name, "url": url, "pid": process.pid, "log": str(log), "started": int(time.time())}
        (self.folder / f"{record.name}.process.json").write_text(json.dumps(details, indent=2))

    # --- EndpointDeployer
    def current(self, name: str) -> EndpointRecord | None:
        return load_record(self.root, name)

    def apply(self, record: EndpointRecord, before: EndpointRecord | None, *, canary: bool = False) -> str:
        """Serve ``record``: start the server, or have the running one re-read it. ``canary`` has no local
        meaning (no alarms here): the new layout serves at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        save_record(self.root, record)
        if not record.variants:
            self.stop(record.name)
            return "Deleted"
        process = self.running(record.name)
        if process is None:
            self._start(record)
        elif before is None or before.layout_key() != record.layout_key():
            os.kill(int(process["pid"]), signal.SIGHUP)
            self._wait(process["url"], record.layout_key(), None, Path(process["log"]))
        return "InService"

    def url(self, name: str) -> str:
        process = self.running(name)
        if process is None:
            raise TrainForgeError(f"endpoint {name} is not running (its record: {record_uri(self.root, name)})")
        return str(process["url"])

    def invoke(self, name: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url(name)}/invocations",
            json=body,
            headers={TARGET_HEADER.decode(): variant, **self._headers()},
            timeout=300,
        )
        answer.raise_for_status()
        return dict(answer.json())
