"""CreateTrainingJob, run as SageMaker runs a bring-your-own-container job
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html):

1. ``/opt/ml/input/config/`` gets hyperparameters.json (the request's strings), inputdataconfig.json and
   resourceconfig.json (hosts algo-1..N, this host algo-1); every object under each channel's S3Prefix
   lands in ``/opt/ml/input/data/<channel>/``; ``CheckpointConfig.S3Uri`` is restored into the local path.
2. The image's ENTRYPOINT runs with the argument ``train`` and the request's Environment (plus
   TRAINING_JOB_NAME and TRAINING_JOB_ARN, which SageMaker sets). Its output streams to CloudWatch Logs
   (/aws/sagemaker/TrainingJobs, stream ``<job>/algo-1-<epoch>``); each line is matched against the
   MetricDefinitions; checkpoints sync to S3 every second.
3. ``/opt/ml/model`` goes to ``S3OutputPath/<job>/output/model.tar.gz`` (or, with CompressionType NONE, as
   files under ``.../output/model/``), ``/opt/ml/output/data`` likewise as output.tar.gz or ``output/data/``.

Status: InProgress (SecondaryStatus Starting, Downloading, Training, Uploading) then Completed, Failed (the
failure reason from ``container.failure_reason``) or Stopped (StopTrainingJob, or MaxRuntimeExceeded).
Only host algo-1 runs: a multi-instance job's other hosts are not emulated.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from tests.twin import storage
from tests.twin.container import Exit, failure_reason
from tests.twin.jobs import ContainerJob, now

STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: the maximum allowed runtime was exceeded",
}


class TrainingJob(ContainerJob):
    kind = "TrainingJob"
    log_group = "/aws/sagemaker/TrainingJobs"
    status_field = "training_job_status"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.metrics: dict[str, dict[str, Any]] = {}
        self.transitions: list[dict[str, Any]] = []
        self.publish(
            training_job_status="InProgress",
            model_artifacts=None,
            training_start_time=None,
            training_end_time=None,
            final_metric_data_list=None,
        )
        self.secondary("Starting")

    def secondary(self, status: str) -> None:
        moment = now()
        if self.transitions:
            self.transitions[-1]["EndTime"] = moment
        self.transitions.append({"Status": status, "StartTime": moment, "StatusMessage": STATUS_MESSAGES[status]})
        self.publish(secondary_status=status, secondary_status_transitions=[dict(t) for t in self.transitions])

    # --- the run
    def run(self) -> None:
        runtime = self.twin.runtime(self.request["AlgorithmSpecification"]["TrainingImage"])
        self.secondary("Downloading")
        self.lay_out()
        checkpoint_uri = self.request.get("CheckpointConfig", {}).get("S3Uri")
        checkpoints = self.local(self.request.get("CheckpointConfig", {}).get("LocalPath", "/opt/ml/checkpoints"))
        synced: dict[Any, float] = {}
        if checkpoint_uri:
            self.download(checkpoint_uri, checkpoints)
            synced = {path: path.stat().st_mtime for path in checkpoints.rglob("*") if path.is_file()}

        def sync_checkpoints() -> None:
            if checkpoint_uri and checkpoints.is_dir():
                storage.upload_tree(self.s3, checkpoints, checkpoint_uri, synced)

        started = now()
        self.publish(training_start_time=started)
        self.secondary("Training")
        stream = self.open_stream()

        def on_line(line: str) -> None:
            stream.write(line)
            self.match_metrics(line)

        env = self.environment(
            runtime,
            self.request.get("Environment", {}),
            {"TRAINING_JOB_NAME": self.name, "TRAINING_JOB_ARN": self.arn, "TRAINFORGE_OPT_ML": str(self.opt_ml)},
        )
        entrypoint = list(runtime.recipe.entrypoint)
        argv = [runtime.executable(entrypoint[0]), *entrypoint[1:], "train"]
        exit = self.run_container(argv, env, on_line, tick=sync_checkpoints)
        if not self.stop_cause:  # a stopped job uploads while it is Stopping
            self.secondary("Uploading")
        sync_checkpoints()
        self.finish(exit, started)

    def lay_out(self) -> None:
        config = self.opt_ml / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        resources = self.request["ResourceConfig"]
        hosts = [f"algo-{i}" for i in range(1, int(resources.get("InstanceCount", 1)) + 1)]
        files = {
            "hyperparameters.json": self.request.get("HyperParameters", {}),
            "inputdataconfig.json": {
                channel["ChannelName"]: self.channel_config(channel)
                for channel in self.request.get("InputDataConfig", [])
            },
            "resourceconfig.json": {
                "current_host": "algo-1",
                "current_instance_type": resources.get("InstanceType", ""),
                "current_group_name": "homogeneousCluster",
                "hosts": hosts,
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": resources.get("InstanceType", ""),
                        "hosts": hosts,
                    }
                ],
                "network_interface_name": "eth0",
            },
        }
        for name, content in files.items():
            (config / name).write_text(json.dumps(content, indent=2))
        for channel in self.request.get("InputDataConfig", []):
            source = channel["DataSource"]["S3DataSource"]
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise NotImplementedError(f"channel {channel['ChannelName']}: the twin emulates S3Prefix channels only")
            self.download(source["S3Uri"], self.opt_ml / "input" / "data" / channel["ChannelName"])
        for folder in ("model", "output/data", "output/metrics"):
            (self.opt_ml / folder).mkdir(parents=True, exist_ok=True)

    def channel_config(self, channel: dict[str, Any]) -> dict[str, str]:
        mode = self.request["AlgorithmSpecification"].get("TrainingInputMode", "File")
        config = {
            "TrainingInputMode": channel.get("InputMode", mode),
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"
            ),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            config["ContentType"] = channel["ContentType"]
        return config

    def match_metrics(self, line: str) -> None:
        for definition in self.request["AlgorithmSpecification"].get("MetricDefinitions", []):
            match = re.search(definition["Regex"], line)
            if not match:
                continue
            try:
                value = float(match.group(1))
            except (IndexError, ValueError):
                continue
            self.metrics[definition["Name"]] = {"MetricName": definition["Name"], "Value": value, "Timestamp": now()}
        if self.metrics:
            self.publish(final_metric_data_list=list(self.metrics.values()))

    # --- the end
    def finish(self, exit: Exit, started: datetime) -> None:
        ended = now()
        times = {
            "training_end_time": ended,
            "training_time_in_seconds": self.seconds_since(started),
            "billable_time_in_seconds": self.seconds_since(started),
        }
        if self.stop_cause:
            self.upload_outputs()
            self.publish(training_job_status="Stopped", **times)
            self.secondary("MaxRuntimeExceeded" if self.stop_cause == "MaxRuntimeExceeded" else "Stopped")
        elif exit.code == 0:
            self.upload_outputs()
            self.publish(training_job_status="Completed", **times)
            self.secondary("Completed")
        else:
            reason = failure_reason(exit, self.opt_ml / "output" / "failure")
            self.publish(training_job_status="Failed", failure_reason=reason, **times)
            self.secondary("Failed")

    def finish_failed(self, reason: str) -> None:
        self.publish(training_job_status="Failed", failure_reason=reason, training_end_time=now())
        self.secondary("Failed")

    def stopping(self) -> None:
        self.publish(training_job_status="Stopping")
        self.secondary("Stopping" if self.stop_cause == "Stopped" else self.stop_cause)

    def upload_outputs(self) -> None:
        output = self.request["OutputDataConfig"]
        base = f"{output['S3OutputPath'].rstrip('/')}/{self.name}/output"
        model, data = self.opt_ml / "model", self.opt_ml / "output" / "data"
        if output.get("CompressionType", "GZIP") == "NONE":
            storage.upload_tree(self.s3, model, f"{base}/model/")
            storage.upload_tree(self.s3, data, f"{base}/data/")
            artifacts = f"{base}/model/"
        else:
            storage.upload_tarball(self.s3, model, f"{base}/model.tar.gz")
            storage.upload_tarball(self.s3, data, f"{base}/output.tar.gz")
            artifacts = f"{base}/model.tar.gz"
        self.publish(model_artifacts={"S3ModelArtifacts": artifacts})
