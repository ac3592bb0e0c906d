"""LocalDeployer: the model server as a managed background process, its URL recorded in the workspace.

A new version of the same model replaces the running server (stop, then start); ``deployments/NAME.json``
says which version is live, on which URL, under which pid, and where its log is.
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

import httpx

from trainforge.contracts import Deployment, ModelVersion
from trainforge.errors import TrainForgeError
from trainforge.local.file_store import uri_to_path


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
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class LocalDeployer:
    def __init__(
        self, workspace: Path, port: int = 8000, api_key: str | None = None, startup_timeout: float = 180.0
    ) -> None:
        self.folder = workspace / "deployments"
        self.port = port
        self.api_key = api_key
        self.startup_timeout = startup_timeout

    def record(self, name: str) -> dict[str, object] | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def stop(self, name: str) -> None:
        record = self.record(name)
        if record and _alive(int(record["pid"])):  # type: ignore[call-overload]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(record["pid"]), signal.SIGTERM)  # type: ignore[call-overload]
            deadline = time.time() + 15
            while _alive(int(record["pid"])) and time.time() < deadline:  # type: ignore[call-overload]
                time.sleep(0.1)

    def deploy(self, version: ModelVersion) -> Deployment:
        self.stop(version.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port(self.port)
        url = f"http://127.0.0.1:{port}"
        log = self.folder / f"{version.name}.log"
        command = [
            sys.executable,
            "-m",
            "trainforge.cli",
            "serve",
            str(uri_to_path(version.model_uri)),
            "--name",
            version.name,
            "--port",
            str(port),
        ]
        env = {**os.environ, **({"TRAINFORGE_API_KEY": self.api_key} if self.api_key else {})}
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        deadline = time.time() + self.startup_timeout
        while True:
            if process.poll() is not None:
                raise TrainForgeError(f"the model server exited with code {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            if time.time() > deadline:
                process.terminate()
                raise TrainForgeError(
                    f"the model server did not answer /ping within {self.startup_timeout:.0f} s; see {log}"
                )
            time.sleep(0.5)
        record = {
            "name": version.name,
            "version": version.version,
            "run_id": version.run_id,
            "url": url,
            "pid": process.pid,
            "model_uri": version.model_uri,
            "log": str(log),
            "started": int(time.time()),
        }
        (self.folder / f"{version.name}.json").write_text(json.dumps(record, indent=2))
        return Deployment(
            run_id=version.run_id,
            target="local",
            endpoint_name=version.name,
            url=url,
            traffic={version.version: 100},
            status="InService",
        )
