"""CreateProcessingJob, run as SageMaker runs a processing container
(https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html): each
ProcessingInput's objects under its LocalPath, ``AppSpecification.ContainerEntrypoint`` (else the image's
ENTRYPOINT) with ``ContainerArguments``, the request's Environment; each ProcessingOutput's LocalPath
uploaded to its S3Uri when the job completes (``Continuous`` outputs too: they go up at the end). Logs to
/aws/sagemaker/ProcessingJobs; ``ExitMessage`` is the first 1 KB of /opt/ml/output/message
(https://docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html).
"""

from __future__ import annotations

from typing import Any

from tests.twin import storage
from tests.twin.container import FAILURE_REASON_LIMIT, Exit, failure_reason
from tests.twin.jobs import ContainerJob, now


class ProcessingJob(ContainerJob):
    kind = "ProcessingJob"
    log_group = "/aws/sagemaker/ProcessingJobs"
    status_field = "processing_job_status"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.publish(processing_job_status="InProgress", processing_end_time=None, processing_start_time=now())

    def run(self) -> None:
        app = self.request["AppSpecification"]
        runtime = self.twin.runtime(app["ImageUri"])
        for item in self.request.get("ProcessingInputs", []):
            if "S3Input" not in item:
                raise NotImplementedError(f"input {item.get('InputName')}: the twin emulates S3Input inputs only")
            self.download(item["S3Input"]["S3Uri"], self.local(item["S3Input"]["LocalPath"]))
        for item in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            self.local(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        entrypoint = list(app.get("ContainerEntrypoint") or runtime.recipe.entrypoint)
        if not entrypoint:
            raise ValueError("no ContainerEntrypoint and the image has no ENTRYPOINT")
        argv = [runtime.executable(entrypoint[0]), *entrypoint[1:], *app.get("ContainerArguments", [])]
        env = self.environment(
            runtime,
            self.request.get("Environment", {}),
            {"TRAINFORGE_PROCESSING_ROOT": str(self.local("/opt/ml/processing"))},
        )
        stream = self.open_stream()
        self.finish(self.run_container(argv, env, stream.write))

    def finish(self, exit: Exit) -> None:
        message_file = self.local("/opt/ml/output/message")
        fields: dict[str, Any] = {"processing_end_time": now()}
        if message_file.is_file():
            fields["exit_message"] = message_file.read_text(errors="replace")[:FAILURE_REASON_LIMIT]
        if self.stop_cause:
            self.publish(processing_job_status="Stopped", **fields)
        elif exit.code == 0:
            for item in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                output = item["S3Output"]
                storage.upload_tree(self.s3, self.local(output["LocalPath"]), output["S3Uri"])
            self.publish(processing_job_status="Completed", **fields)
        else:
            reason = failure_reason(exit, None)
            self.publish(processing_job_status="Failed", failure_reason=reason, **fields)

    def finish_failed(self, reason: str) -> None:
        self.publish(processing_job_status="Failed", failure_reason=reason, processing_end_time=now())

    def stopping(self) -> None:
        self.publish(processing_job_status="Stopping")
