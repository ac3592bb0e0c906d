"""A custom job's CreateTrainingJob request through the twin: the request the pipeline builds for a script
(AWS's PyTorch Neuron container on Trainium, the source as the code channel, hyperparameters as script mode sends them,
isolated, in the VPC, encrypted) passes the twin's rules, and the script runs from it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from tests.integration.twin.conftest import BUCKET, wait
from trainforge.aws.sagemaker_requests import AwsResources, create_training_job
from trainforge.contracts import TrainingRequest
from trainforge.custom.request import custom_parts
from trainforge.instances import instance_type
from trainforge.spec import CustomSpec

SCRIPT = """import argparse, json, os, pathlib
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--note")
args, _ = parser.parse_known_args()
rows = [line for path in pathlib.Path(os.environ["SM_CHANNEL_TRAIN"]).rglob("*.jsonl") for line in path.read_text().splitlines()]
for step in range(1, args.epochs + 1):
    print(json.dumps({"step": step, "loss": float(torch.tensor(1.0) / step)}), flush=True)
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.json").write_text(
    json.dumps({"rows": len(rows), "note": args.note, "hp": os.environ["SM_HP_EPOCHS"], "code": os.getcwd()})
)
"""


def test_a_script_mode_request_passes_the_rules_and_runs_its_script(
    sagemaker_twin, sagemaker_role, train_uri, s3, tmp_path: Path
) -> None:
    """Given a source folder and a custom spec, when Prepare's parts go into a CreateTrainingJob request for
    ml.trn1.2xlarge, then the twin accepts it (no rule broken), unpacks the code channel's archive, runs the
    script in the PyTorch venv with its hyperparameters and channels, and uploads what it wrote to SM_MODEL_DIR."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(SCRIPT)
    custom = CustomSpec(
        entry_point="train.py", source="jobs/x/src/", framework="pytorch", hyperparameters={"epochs": 3, "note": "a b"}
    )
    parts = custom_parts(
        custom,
        source_uri=(tmp_path / "src").as_uri() + "/",
        code_uri=f"s3://{BUCKET}/runs/x/train/source",
        base_model_id="tiny",
        instance=instance_type("ml.trn1.2xlarge"),
        region="us-east-1",
    )
    assert parts.image and "/pytorch-training-neuronx:" in parts.image
    assert "NEURON_CC_FLAGS" not in parts.environment  # the pipeline's loop's compiler flags: the script's own call
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    aws = AwsResources("us-east-1", sagemaker_role, key, ("subnet-0a",), ("sg-0123456789abcdef0",))
    training = TrainingRequest(
        run_id="twin-custom",
        job_name="x",
        training_job_name="twin-custom",
        image=parts.image,
        instance_type="ml.trn1.2xlarge",
        instance_count=1,
        spot=False,
        max_runtime_seconds=3600,
        volume_size_gb=50,
        channels={"train": train_uri, **parts.channels},
        hyperparameters=parts.hyperparameters,
        environment=parts.environment,
        checkpoint_uri=f"s3://{BUCKET}/checkpoints/twin-custom/",
        output_uri=f"s3://{BUCKET}/output",
    )
    request = create_training_job(training, aws)  # the pipeline's own builder: isolated, VPC, KMS, bounds
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**request)

    described = wait(lambda: sagemaker.describe_training_job(TrainingJobName="twin-custom"), "TrainingJobStatus")

    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["EnableNetworkIsolation"] is True
    key = "output/twin-custom/output/model/model.json"
    written = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert written["rows"] == 24 and written["note"] == "a b" and written["hp"] == "3"
    assert written["code"].endswith("/opt_ml/code") or written["code"].endswith("/code")
    assert [m["MetricName"] for m in described["FinalMetricDataList"]] == ["train:loss"]
