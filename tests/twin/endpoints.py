"""Real-time endpoints, hosted as SageMaker hosts them
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html): for each production
variant, the model's container runs ``IMAGE serve`` with /opt/ml/model filled from the model's
``ModelDataSource.S3DataSource`` (S3Prefix, CompressionType None) or ``ModelDataUrl`` (a tar.gz), its
Environment, and ``SAGEMAKER_BIND_TO_PORT`` set to a free port (the documented variable by which SageMaker
tells a container where to listen). The endpoint is ``Creating`` until ``GET /ping`` answers 200, then
``InService``; a container that exits first fails the endpoint with its last log lines.

UpdateEndpoint (which moto lacks) goes ``Updating``, starts the new configuration's containers, switches
to them once they answer /ping and stops the old ones; if the new ones fail, the old ones keep serving and
the endpoint is back ``InService`` with the FailureReason. Blue/green traffic shifting (canary, linear
steps, alarms, rollback on alarm) is not emulated: the switch is all at once. With several variants,
InvokeEndpoint goes to the first (weights are not emulated) unless TargetVariant names one.
InvokeEndpoint (moto answers with canned results) is forwarded to the container's ``POST /invocations``.
Container logs go to /aws/sagemaker/Endpoints/<name>.
"""

from __future__ import annotations

import http.client
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.core.exceptions import ServiceException
from moto.sagemaker.models import sagemaker_backends

from tests.twin import storage
from tests.twin.container import FAILURE_REASON_LIMIT, Container
from tests.twin.jobs import Published, container_environment
from tests.twin.logs import LogStream
from tests.twin.wire import ValidationException

if TYPE_CHECKING:
    from tests.twin.twin import SageMakerTwin

#: how long a container may take to answer /ping (ProductionVariant ContainerStartupHealthCheckTimeoutInSeconds)
DEFAULT_STARTUP_SECONDS = 600
#: SageMaker's limit for a real-time invocation's answer:
#: https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html#your-algorithms-inference-code-how-containe-serves-requests
INVOCATION_TIMEOUT_SECONDS = 60


class ModelError(ServiceException):
    """InvokeEndpoint's answer when the container answers with an error (HTTP 424)."""

    code = "ModelError"

    def __init__(self, message: str, original_status: int, original_message: str, log_stream_arn: str) -> None:
        super().__init__(message)
        self.OriginalStatusCode = original_status
        self.OriginalMessage = original_message
        self.LogStreamArn = log_stream_arn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One variant's container, listening on ``port``."""

    variant: str
    port: int
    container: Container
    stream: LogStream

    def ping(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/ping")
            return connection.getresponse().status == 200
        except OSError:
            return False


class Endpoint(Published):
    def __init__(self, twin: SageMakerTwin, record: Any, account: str, region: str) -> None:
        super().__init__()
        self.twin = twin
        self.record = record
        self.account, self.region = account, region
        self.name: str = record.endpoint_name
        self.s3 = storage.client("s3", region)
        self.logs = storage.client("logs", region)
        self.servers: list[Server] = []  # the ones serving
        self.started: list[Server] = []  # every one ever started, for shutdown
        self.closed = False  # deleted (or the twin uninstalled): containers started from now on are stopped
        self.thread: threading.Thread | None = None

    @property
    def backend(self) -> Any:
        return sagemaker_backends[self.account][self.region]

    def in_background(self, target: Any, *args: Any) -> None:
        self.thread = threading.Thread(target=target, args=args, daemon=True, name=f"twin-endpoint-{self.name}")
        self.thread.start()

    # --- create / update
    def create(self) -> None:
        self.publish(endpoint_status="Creating", failure_reason=None)
        self.in_background(self._create, self.record.endpoint_config_name)

    def _create(self, config_name: str) -> None:
        servers, failure = self.start_config(config_name)
        if failure:
            self.publish(endpoint_status="Failed", failure_reason=failure)
            return
        self.servers = servers
        self.publish(endpoint_status="InService")
        if self.closed:
            self.shutdown()

    def update(self, config_name: str, deployment_config: dict[str, Any] | None) -> None:
        self.publish(endpoint_status="Updating", failure_reason=None)
        if deployment_config:
            self.publish(last_deployment_config=deployment_config)
        self.in_background(self._update, config_name)

    def _update(self, config_name: str) -> None:
        servers, failure = self.start_config(config_name)
        if failure:  # the old containers never stopped serving
            self.publish(endpoint_status="InService", failure_reason=failure)
            return
        old, self.servers = self.servers, servers
        config = self.backend.describe_endpoint_config(config_name)
        self.publish(
            endpoint_config_name=config_name,
            production_variants=self.record._process_production_variants(config["ProductionVariants"]),
            endpoint_status="InService",
        )
        for server in old:
            server.container.stop(self.twin.stop_grace_seconds)
        if self.closed:
            self.shutdown()

    def start_config(self, config_name: str) -> tuple[list[Server], str]:
        """Every variant of the configuration up and answering /ping, or ([], why not)."""
        servers: list[Server] = []
        try:
            for variant in self.backend.describe_endpoint_config(config_name)["ProductionVariants"]:
                if self.closed:
                    return [], "the endpoint was deleted"
                server = self.start_variant(config_name, variant)
                servers.append(server)
                failure = self.wait_healthy(server, variant)
                if failure:
                    for begun in servers:
                        begun.container.kill()
                    return [], failure
        except Exception as error:  # the twin's own failure, reported as SageMaker reports its own
            for begun in servers:
                begun.container.kill()
            return [], f"InternalServerError: the SageMaker twin failed: {type(error).__name__}: {error}"
        return servers, ""

    def start_variant(self, config_name: str, variant: dict[str, Any]) -> Server:
        model = self.backend.describe_model(variant["ModelName"])
        container = model.primary_container or model.containers[0]
        image = container["Image"]
        runtime = self.twin.runtime(image)
        folder = self.twin.workdir / f"Endpoint-{self.name}-{config_name}-{variant['VariantName']}"
        opt_ml = folder / "opt" / "ml"
        self.fetch_model(container, opt_ml / "model")
        stream = LogStream(
            self.logs, f"/aws/sagemaker/Endpoints/{self.name}", f"{variant['VariantName']}/i-{secrets.token_hex(8)}"
        )
        if self.twin.images.is_lmi(image):
            stream.write(
                f"[twin] {image} is AWS's LMI image: the product's server from {runtime.image.dockerfile} stands in for it"
            )
        port = free_port()
        env = container_environment(
            runtime,
            folder,
            container.get("Environment", {}),
            {"SAGEMAKER_BIND_TO_PORT": str(port), "TRAINFORGE_OPT_ML": str(opt_ml)},
        )
        entrypoint = list(runtime.recipe.entrypoint)
        argv = [runtime.executable(entrypoint[0]), *entrypoint[1:], "serve"]
        server = Server(variant["VariantName"], port, Container(argv, env, folder, stream.write), stream)
        self.started.append(server)
        return server

    def fetch_model(self, container: dict[str, Any], target: Path) -> None:
        source = container.get("ModelDataSource", {}).get("S3DataSource")
        if source:
            if source.get("CompressionType", "None") == "None":
                storage.download_prefix(self.s3, source["S3Uri"], target)
            else:
                storage.download_tarball(self.s3, source["S3Uri"], target)
        elif container.get("ModelDataUrl"):
            storage.download_tarball(self.s3, container["ModelDataUrl"], target)
        else:
            target.mkdir(parents=True, exist_ok=True)

    def wait_healthy(self, server: Server, variant: dict[str, Any]) -> str:
        deadline = time.monotonic() + variant.get(
            "ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_STARTUP_SECONDS
        )
        while time.monotonic() < deadline and not self.closed:
            if server.ping():
                return ""
            if not server.container.running:
                break
            time.sleep(0.2)
        # the container goes before its log is read: a dying server may still be writing its last words, and
        # SageMaker's reason quotes the log as it stands once the container has ended
        server.container.kill()
        reason = (
            f"The primary container for production variant {server.variant} did not pass the ping health check. "
            f"Please check CloudWatch logs for this endpoint. Last log lines: {server.stream.last(8)}"
        )
        return reason[:FAILURE_REASON_LIMIT]

    # --- serve / delete
    def invoke(
        self, body: bytes, headers: dict[str, str], target_variant: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        servers = [s for s in self.servers if target_variant in (None, s.variant)]
        if self.record.endpoint_status not in ("InService", "Updating") or not servers:
            raise ValidationException(f"Endpoint {self.name} of account {self.account} not found.")
        server = servers[0]
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=INVOCATION_TIMEOUT_SECONDS)
        connection.request("POST", "/invocations", body=body, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status >= 400:
            kind = "client" if answer.status < 500 else "server"
            text = payload.decode(errors="replace")
            stream_arn = f"arn:aws:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/Endpoints/{self.name}"
            raise ModelError(
                f'Received {kind} error ({answer.status}) from primary with message "{text}". See {stream_arn} for more information.',
                answer.status,
                text,
                stream_arn,
            )
        reply = {
            "Content-Type": answer.getheader("Content-Type", "application/json"),
            "x-Amzn-Invoked-Production-Variant": server.variant,
        }
        custom = answer.getheader("X-Amzn-SageMaker-Custom-Attributes")
        if custom:
            reply["X-Amzn-SageMaker-Custom-Attributes"] = custom
        return 200, reply, payload

    def shutdown(self) -> None:
        """Every container this endpoint started goes (deleted endpoint, or the twin uninstalled)."""
        self.closed = True
        self.servers = []
        for server in self.started:
            server.container.kill()
