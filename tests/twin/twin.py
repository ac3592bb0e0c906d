"""SageMakerTwin: installs the twin into an active ``mock_aws`` and removes it without a trace."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import camelcase_to_underscores
from moto.sagemaker.exceptions import ResourceNotFound
from moto.sagemaker.models import FakeEndpointConfig, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from tests.twin import stepfunctions
from tests.twin.bedrock import ModelImports
from tests.twin.context import MotoRuleContext
from tests.twin.endpoints import Endpoint
from tests.twin.images import ImageRegistry
from tests.twin.jobs import STOP_GRACE_SECONDS, ContainerJob
from tests.twin.processing import ProcessingJob
from tests.twin.quotas import SageMakerQuotas
from tests.twin.training import TrainingJob
from tests.twin.tuning import TuningJob
from tests.twin.venvs import Runtime
from tests.twin.wire import Patches, ValidationException, WireRequest, decode, intercept

#: the services whose requests are held to the rules (botocore names)
CHECKED_SERVICES = frozenset({"sagemaker", "sagemaker-runtime", "bedrock", "stepfunctions", "scheduler", "sns"})


class Rules(Protocol):
    def check(self, api: str, request: dict[str, Any], ctx: Any) -> list[str]: ...


@dataclass(frozen=True)
class Violation:
    api: str  # e.g. sagemaker:CreateTrainingJob
    message: str  # "rule-id: what is wrong (source URL)"
    request: dict[str, Any] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.api}: {self.message}"


class SageMakerTwin:
    """SageMaker (and Bedrock import) inside moto: requests held to ``rules`` (default tests.twin.rules),
    the containers they name run from ``images``, each job or endpoint in a folder under ``workdir``.

    Install inside ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}, ...})``::

        with SageMakerTwin(images, tmp_path) as twin:
            ...  # any boto3 client in the process now reaches the twin
        assert twin.violations == []

    ``stop_grace_seconds``: SIGTERM-to-SIGKILL delay of a stop (SageMaker's 120 s by default);
    ``import_seconds``: how long a Bedrock import stays InProgress before it is checked.
    """

    def __init__(
        self,
        images: ImageRegistry,
        workdir: Path,
        rules: Rules | ModuleType | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        import_seconds: float = 0.5,
    ) -> None:
        self.images = images
        self.workdir = workdir
        self.rules = rules
        self.stop_grace_seconds = stop_grace_seconds
        self.import_seconds = import_seconds
        #: every request a rule refused (each also answered with a ValidationException)
        self.violations: list[Violation] = []
        self.training_jobs: dict[str, TrainingJob] = {}
        self.processing_jobs: dict[str, ProcessingJob] = {}
        self.tuning_jobs: dict[str, TuningJob] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.imports = ModelImports(self)
        #: the account's SageMaker quotas, as Service Quotas lists them
        self.quotas = SageMakerQuotas()
        self._patches = Patches()

    def runtime(self, uri: str) -> Runtime:
        return self.images.runtime(uri)

    def __enter__(self) -> SageMakerTwin:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # --- the rules
    def check(self, request: WireRequest) -> list[str]:
        assert self.rules is not None
        problems = self.rules.check(request.api, request.body, MotoRuleContext(request.region))
        self.violations += [Violation(request.api, problem, request.body) for problem in problems]
        return problems

    # --- install / uninstall
    def install(self) -> None:
        if self.rules is None:
            from tests.twin import rules

            self.rules = rules
        self.workdir.mkdir(parents=True, exist_ok=True)
        patches = self._patches
        intercept(patches, set(CHECKED_SERVICES), self.check)
        self.imports.install(patches)
        self.quotas.install(patches)
        stepfunctions.install(patches)
        stepfunctions.install_keyword_bindings(patches)
        # moto's own list of endpoint instance types predates g5/g6/p5/inf2/trn: the rules own such facts
        patches.set(FakeEndpointConfig, "validate_instance_type", lambda self, instance_type: None)
        self._install_jobs(patches, "create_training_job", "training_jobs", TrainingJob, self.training_jobs)
        self._install_jobs(patches, "create_processing_job", "processing_jobs", ProcessingJob, self.processing_jobs)
        self._install_stop(patches, "stop_training_job", "TrainingJobName", "training", self.training_jobs)
        self._install_stop(patches, "stop_processing_job", "ProcessingJobName", "processing", self.processing_jobs)
        self._install_endpoints(patches)
        self._install_tuning(patches)

    def uninstall(self) -> None:
        """Stop every container (SIGKILL: the test is over), then restore moto exactly as it was."""
        try:
            for endpoint in self.endpoints.values():
                endpoint.shutdown()
            for tuning in self.tuning_jobs.values():
                tuning.stopping.set()  # no more trials
            jobs: list[ContainerJob] = [*self.training_jobs.values(), *self.processing_jobs.values()]
            for job in jobs:
                job.kill()
            for tuning in self.tuning_jobs.values():
                tuning.thread.join(timeout=30)
            for thread in [*(e.thread for e in self.endpoints.values() if e.thread), *self.imports.threads]:
                thread.join(timeout=30)
            for endpoint in self.endpoints.values():
                endpoint.shutdown()  # containers a creation still in flight started meanwhile
        finally:
            self._patches.undo()

    def _install_jobs(
        self, patches: Patches, action: str, table: str, job_class: type[ContainerJob], jobs: dict
    ) -> None:
        """After moto records a Create*Job, the twin restores the request onto moto's record (moto keeps a
        subset and rewrites some of it) and starts the job."""
        original = getattr(SageMakerResponse, action)
        twin = self

        def create(self: SageMakerResponse) -> Any:
            result = original(self)
            request = json.loads(self.body)
            record = getattr(sagemaker_backends[self.current_account][self.region], table)[
                request[f"{job_class.kind}Name"]
            ]
            for key, value in request.items():
                setattr(record, camelcase_to_underscores(key), value)
            job = job_class(twin, request, record, self.region)
            jobs[job.name] = job
            job.start()
            return result

        patches.set(SageMakerResponse, action, create)

    def _install_stop(self, patches: Patches, action: str, name_param: str, noun: str, jobs: dict) -> None:
        def stop(self: SageMakerResponse) -> Any:
            job = jobs.get(self._get_param(name_param))
            if job is None:
                raise ResourceNotFound("Requested resource not found.")
            if job.status != "InProgress":
                raise ValidationException(f"The request was rejected because the {noun} job is in status {job.status}.")
            job.stop()
            return EmptyResult()

        patches.set(SageMakerResponse, action, stop)

    def _install_endpoints(self, patches: Patches) -> None:
        twin = self
        create_original = SageMakerResponse.create_endpoint
        delete_original = SageMakerResponse.delete_endpoint

        def create_endpoint(self: SageMakerResponse) -> Any:
            result = create_original(self)
            name = self._get_param("EndpointName")
            record = sagemaker_backends[self.current_account][self.region].endpoints[name]
            twin.endpoints[name] = Endpoint(twin, record, self.current_account, self.region)
            twin.endpoints[name].create()
            return result

        def update_endpoint(self: SageMakerResponse) -> Any:
            name, config = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
            backend = sagemaker_backends[self.current_account][self.region]
            endpoint = twin.endpoints.get(name)
            if endpoint is None:
                backend.describe_endpoint(name)  # moto's "Could not find endpoint" error
                raise ValidationException(f"Endpoint {name} is not hosted by the twin.")
            backend.describe_endpoint_config(config)  # moto's "Could not find endpoint configuration" error
            if endpoint.record.endpoint_status != "InService":
                raise ValidationException(f'Cannot update in-progress endpoint "{endpoint.record.arn}".')
            endpoint.update(config, self._get_param("DeploymentConfig"))
            return ActionResult({"EndpointArn": endpoint.record.arn})

        def delete_endpoint(self: SageMakerResponse) -> Any:
            result = delete_original(self)
            endpoint = twin.endpoints.pop(self._get_param("EndpointName"), None)
            if endpoint is not None:
                endpoint.shutdown()
            return result

        def invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
            request = decode(self).body
            endpoint = twin.endpoints.get(request["EndpointName"])
            if endpoint is None:
                raise ValidationException(
                    f"Endpoint {request['EndpointName']} of account {self.current_account} not found."
                )
            headers = {"Content-Type": request.get("ContentType", "application/octet-stream")}
            if "Accept" in request:
                headers["Accept"] = request["Accept"]
            if "CustomAttributes" in request:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = request["CustomAttributes"]
            return endpoint.invoke(self.raw_body, headers, request.get("TargetVariant"))

        patches.set(SageMakerResponse, "create_endpoint", create_endpoint)
        patches.set(SageMakerResponse, "update_endpoint", update_endpoint)
        patches.set(SageMakerResponse, "delete_endpoint", delete_endpoint)
        patches.set(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)

    def _install_tuning(self, patches: Patches) -> None:
        """Tuning jobs run their trials (``tests.twin.tuning``); moto records the create but has no Stop or
        ListTrainingJobsForHyperParameterTuningJob, and describes a tuning job as a fixed Completed one."""
        twin = self
        create_original = SageMakerResponse.create_hyper_parameter_tuning_job

        def backend(response: SageMakerResponse) -> Any:
            return sagemaker_backends[response.current_account][response.region]

        def tuning(response: SageMakerResponse) -> TuningJob:
            job = twin.tuning_jobs.get(response._get_param("HyperParameterTuningJobName"))
            if job is None:
                raise ResourceNotFound("Amazon SageMaker can't find a tuning job with name.")
            return job

        def create(self: SageMakerResponse) -> Any:
            request = json.loads(self.body)
            parents = request.get("WarmStartConfig", {}).get("ParentHyperParameterTuningJobs", [])
            for parent in parents:  # a warm start's parents must exist
                if parent["HyperParameterTuningJobName"] not in backend(self).hyper_parameter_tuning_jobs:
                    raise ResourceNotFound(
                        f"Amazon SageMaker can't find a tuning job with name {parent['HyperParameterTuningJobName']}"
                    )
            result = create_original(self)
            record = backend(self).hyper_parameter_tuning_jobs[request["HyperParameterTuningJobName"]]
            job = TuningJob(twin, request, record, self.region)
            twin.tuning_jobs[job.name] = job
            job.start()
            return result

        def describe(self: SageMakerResponse) -> Any:
            described = backend(self).describe_hyper_parameter_tuning_job(tuning(self).name)
            return ActionResult({key: value for key, value in described.items() if value is not None})

        def stop(self: SageMakerResponse) -> Any:
            job = tuning(self)
            if job.status != "InProgress":
                raise ValidationException(f"The request was rejected because the tuning job is in status {job.status}.")
            job.stop()
            return EmptyResult()

        def list_trials(self: SageMakerResponse) -> Any:
            """ListTrainingJobsForHyperParameterTuningJob (MaxResults 1-100, default 10; NextToken; StatusEquals;
            SortBy Name, CreationTime, Status or FinalObjectiveMetricValue:
            https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListTrainingJobsForHyperParameterTuningJob.html)."""
            summaries = tuning(self).summaries()
            if status := self._get_param("StatusEquals"):
                summaries = [s for s in summaries if s["TrainingJobStatus"] == status]
            sort_by = self._get_param("SortBy") or "Name"
            keys = {
                "Name": lambda s: s["TrainingJobName"],
                "CreationTime": lambda s: s["CreationTime"],
                "Status": lambda s: s["TrainingJobStatus"],
                "FinalObjectiveMetricValue": lambda s: s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get(
                    "Value", float("inf")
                ),
            }
            summaries.sort(key=keys[sort_by], reverse=self._get_param("SortOrder") == "Descending")
            start, size = int(self._get_param("NextToken") or 0), int(self._get_param("MaxResults") or 10)
            page: dict[str, Any] = {"TrainingJobSummaries": summaries[start : start + size]}
            if start + size < len(summaries):
                page["NextToken"] = str(start + size)
            return ActionResult(page)

        patches.set(SageMakerResponse, "create_hyper_parameter_tuning_job", create)
        patches.set(SageMakerResponse, "describe_hyper_parameter_tuning_job", describe)
        patches.set(SageMakerResponse, "stop_hyper_parameter_tuning_job", stop)
        patches.set(SageMakerResponse, "list_training_jobs_for_hyper_parameter_tuning_job", list_trials)
