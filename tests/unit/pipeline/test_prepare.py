"""Prepare and PrepareEvaluation in AWS mode (moto S3): the run's own data, its bounds, its instances."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from moto import mock_aws

from tests.conftest import chat
from trainforge.contracts import DatasetReport
from trainforge.pipeline import steps
from trainforge.pipeline.admission import admit
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.validation_fanout import validate_run_here

DATA, ARTIFACTS = "tf-data", "tf-artifacts"
GPU, NEURON = "1.dkr.ecr.us-east-1.amazonaws.com/tf:gpu", "1.dkr.ecr.us-east-1.amazonaws.com/tf:neuron"
SPEC = """name: support
base_model: s3://tf-artifacts/base-models/tiny/
data: {{train: datasets/support/train.jsonl, {data}}}
compute: {{instance_type: {instance}, spot: {spot}, max_runtime_hours: 3}}
hyperparameters: {{max_steps: 4, batch_size: 2, max_seq_len: 64}}
"""


def rows(prefix: str, n: int, contact: str = "") -> str:
    return "".join(
        json.dumps(chat(f"{prefix} question {i}", f"{prefix} answer {i} {contact}")) + "\n" for i in range(n)
    )


@pytest.fixture
def aws(aws_env, tiny_model_dir):
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (DATA, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for path in tiny_model_dir.iterdir():
            s3.upload_file(str(path), ARTIFACTS, f"base-models/tiny/{path.name}")
        yield s3


PLATFORM = Platform(
    data_root=f"s3://{DATA}", artifacts_uri=f"s3://{ARTIFACTS}", local=False, image_uri=GPU, neuron_image_uri=NEURON
)


def validated(request, spec):
    return validate_run_here(request, spec, PLATFORM, processes=1)  # moto lives in this process only


def admitted(s3, spec_text: str):
    version = s3.put_object(Bucket=DATA, Key="jobs/support.yaml", Body=spec_text.encode())["VersionId"]
    return admit(
        f"s3://{DATA}/jobs/support.yaml", spec_text.encode(), version, f"s3://{DATA}", f"s3://{ARTIFACTS}", "upload"
    )


def objects(s3, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix).get("Contents", [])
    return {o["Key"].removeprefix(prefix): s3.get_object(Bucket=ARTIFACTS, Key=o["Key"])["Body"].read() for o in listed}


def test_the_run_trains_on_the_admitted_versions_not_on_what_arrived_since(aws):
    """Given a run admitted on version 1 of the data, when version 2 lands before Prepare runs, then the
    training channel is the run's own copy of version 1 (validated, and named in the lineage)."""
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("v1", 20).encode())
    request, spec = admitted(aws, SPEC.format(data="validation_fraction: 0.2", instance="ml.g5.2xlarge", spot="false"))
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("v2", 20).encode())
    report = validated(request, spec)
    training = steps.prepare_training(request, spec, report, PLATFORM)
    assert training.channels["train"] == f"s3://{ARTIFACTS}/runs/{request.run_id}/data/train/"
    assert objects(aws, f"runs/{request.run_id}/data/train/") == {"train.jsonl": rows("v1", 20).encode()}


def test_redaction_keeps_validation_out_of_training_and_evaluation_reads_it_redacted(aws):
    """Given pii: redact and a separate validation file, the train channel holds only the redacted
    training records and evaluation reads the redacted validation copy, never the raw file."""
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("train", 10, "jane@example.com").encode())
    aws.put_object(
        Bucket=DATA, Key="datasets/support/validation.jsonl", Body=rows("held", 4, "bob@example.com").encode()
    )
    data = "validation: datasets/support/validation.jsonl, pii: redact"
    request, spec = admitted(aws, SPEC.format(data=data, instance="ml.g5.2xlarge", spot="false"))
    report = validated(request, spec)
    training = steps.prepare_training(request, spec, report, PLATFORM)
    train = objects(aws, f"runs/{request.run_id}/data/train/")
    validation = objects(aws, f"runs/{request.run_id}/data/validation/")
    assert list(train) == list(validation) == ["redacted.jsonl"]
    assert (
        b"held" not in train["redacted.jsonl"]
        and b"@example.com" not in train["redacted.jsonl"] + validation["redacted.jsonl"]
    )
    assert validation["redacted.jsonl"].count(b"\n") == 4
    result = _trained(aws, request)
    evaluation = steps.prepare_evaluation(request, spec, training, result, PLATFORM)
    assert evaluation.inputs["data"] == training.channels["validation"]


def _trained(s3, request):
    """What a finished training job leaves: the model folder with its lineage file."""
    model = f"runs/{request.run_id}/train/output/{request.run_id}-0/output/model/"
    s3.put_object(
        Bucket=ARTIFACTS, Key=model + "trainforge.json", Body=json.dumps({"final_loss": 1.0, "wall_seconds": 3})
    )
    return steps.training_result(
        request, f"s3://{ARTIFACTS}/{model}", PLATFORM, training_job_name=f"{request.run_id}-0"
    )


def test_the_specs_runtime_bounds_the_job_and_spot_waits_twice_as_long(aws):
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("v1", 20).encode())
    request, spec = admitted(aws, SPEC.format(data="validation_fraction: 0.2", instance="ml.g5.2xlarge", spot="true"))
    training = steps.prepare_training(request, spec, validated(request, spec), PLATFORM)
    assert (training.max_runtime_seconds, training.max_wait_seconds, training.spot) == (10800, 21600, True)
    assert json.loads(training.hyperparameters["device"]) == "cuda"


def test_a_trainium_job_gets_the_neuron_image_and_a_process_per_core(aws):
    aws.put_object(Bucket=DATA, Key="datasets/support/train.jsonl", Body=rows("v1", 20).encode())
    request, spec = admitted(
        aws, SPEC.format(data="validation_fraction: 0.2", instance="ml.trn1.32xlarge", spot="false")
    )
    training = steps.prepare_training(request, spec, validated(request, spec), PLATFORM)
    assert (training.image, training.environment["TRAINFORGE_NPROC_PER_NODE"]) == (NEURON, "32")
    assert json.loads(training.hyperparameters["device"]) == "neuron"


def test_the_evaluation_instance_is_sized_from_the_base_model(tmp_path):
    """A 7-8B base in bf16 is ~15 GiB: base and tuned together need a 48 GB GPU, not the 24 GB default."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    with (base / "model.safetensors").open("wb") as handle:  # sparse: a size without the bytes
        handle.truncate(16 * 2**30)
    spec = type("S", (), {"evaluation": type("E", (), {"instance_type": None})()})()
    assert steps.evaluation_instance(spec, base.as_uri()) == "ml.g6e.xlarge"  # type: ignore[arg-type]
    os.truncate(base / "model.safetensors", 300 * 2**20)
    assert steps.evaluation_instance(spec, base.as_uri()) in ("ml.g5.xlarge", "ml.g6.xlarge")  # type: ignore[arg-type]


def test_dataset_report_round_trips_redacted_copies():
    report = DatasetReport(
        ok=True,
        files=[],
        format="chat",
        format_detected=True,
        bytes_read=0,
        records=0,
        valid_records=0,
        errors=[],
        redacted_uris=["s3://a/x"],
    )
    assert DatasetReport.model_validate_json(report.model_dump_json()).redacted_uris == ["s3://a/x"]
