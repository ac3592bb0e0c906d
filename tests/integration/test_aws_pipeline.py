"""The AWS path, executed: the synthesized stacks deployed on moto, SageMaker played by the twin.

A job spec uploaded to the data bucket becomes the EventBridge event the stack's rule matches; admit_run
starts the state machine the template defines (its S3 definition asset, its substitutions); the Lambda
handlers run with the environment the template gives them; every SageMaker and Bedrock request is held
to AWS's documented rules (``tests/twin/rules.py``) and the container it names runs from the virtualenv of
its Dockerfile's own extras: real training, real evaluation, the gate, the registry, a real endpoint
answering ``invoke_endpoint``.

What the twin cannot be is a machine with a GPU or Trainium: training runs here on ``ml.m5`` (CPU) types,
and the g5 and trn variants show their requests accepted and their containers stopping at the product's
own "no device" error, recorded in failure.json. The project's model server stands in for AWS's LMI
container behind the same CreateModel request (the twin says so in the endpoint's log). Wait states are
compressed to a fraction of a second: the loops' logic runs, not their wall time.
"""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import chat

QA = [
    ("what is the capital of france", "paris is the capital of france"),
    ("please reset my password", "the reset link is in your email"),
    ("where is my order", "your order has shipped and will arrive on monday"),
    ("hello how are you", "i am fine thank you"),
]
SFT = "".join(json.dumps(chat(f"{q} {i}", a)) + "\n" for i, (q, a) in ((i, QA[i % 4]) for i in range(60)))
PREFERENCE = "".join(
    json.dumps({"prompt": f"{q} {i}", "chosen": a, "rejected": "no idea, sorry"}) + "\n"
    for i, (q, a) in ((i, QA[i % 4]) for i in range(60))
)
SPEC = """name: support
base_model: tiny
method: {method}
data: {{train: datasets/support/train.jsonl, validation_fraction: 0.2}}
hyperparameters: {{max_steps: {steps}, batch_size: 8, max_seq_len: 64, learning_rate: {lr}, eval_every: 10}}
compute: {{instance_type: {instance}, spot: {spot}, max_runtime_hours: 2}}
evaluation: {{min_improvement: 0.05, max_forgetting: 100.0, max_examples: 20, generation_samples: 1, max_new_tokens: 4, instance_type: ml.m5.xlarge}}
deploy: {deploy}
"""


def spec(
    *,
    method: str = "full",
    steps: int = 30,
    lr: float = 0.005,
    instance: str = "ml.m5.xlarge",
    spot: bool = False,
    deploy: str = "{target: sagemaker_endpoint, instance_type: ml.g5.xlarge, max_model_len: 512}",
) -> str:
    return SPEC.format(method=method, steps=steps, lr=lr, instance=instance, spot=str(spot).lower(), deploy=deploy)


def test_an_uploaded_spec_becomes_a_served_model(aws):
    """Spec upload -> rule -> admit_run -> the template's state machine -> plan -> training on ml.m5 ->
    evaluation -> gate -> registry -> an LMI endpoint on ml.g5 InService -> invoke_endpoint answers."""
    execution = aws.run(spec(), data=SFT)
    assert execution["status"] == "SUCCEEDED", execution
    run_id = execution["run_id"]
    job = aws.training_job(run_id)
    # an EBS-only type carries the volume key; the runtime is the spec's; the CUDA image on a CPU type
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == aws.environment["TRAINFORGE_KMS_KEY_ARN"]
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert job["AlgorithmSpecification"]["TrainingImage"] == aws.environment["TRAINFORGE_IMAGE_URI"]
    (package,) = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    assert package["ModelApprovalStatus"] == "Approved"
    container = aws.sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])[
        "InferenceSpecification"
    ]["Containers"][0]
    assert "/djl-inference:" in container["Image"]  # vLLM serves Llama: the LMI engine
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="support")
    assert endpoint["EndpointStatus"] == "InService"
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert "KmsKeyId" not in config  # ml.g5: local NVMe, no key
    answer = boto3.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="support",
        ContentType="application/json",
        Body=json.dumps({"messages": [{"role": "user", "content": "where is my order"}], "max_tokens": 4}),
    )
    completion = json.loads(answer["Body"].read())
    assert completion["object"] == "chat.completion" and isinstance(completion["choices"][0]["message"]["content"], str)
    outcome = aws.artifact(run_id, "outcome.json")
    assert outcome["status"] == "succeeded" and outcome["deployment"]["status"] == "InService"
    # the run kept its plan, and reports planned against actual in its outcome and its evaluation report
    plan = aws.artifact(run_id, "plan.json")
    assert plan["refusals"] == [] and plan["instances"][0]["instance_type"] == "ml.m5.xlarge"
    planned = {row["figure"]: row for row in outcome["planned"]}
    assert set(planned) == {"training time", "tokens", "cost"} and planned["cost"]["actual"].endswith("billed s)")
    report = aws.s3.get_object(Bucket=aws.artifacts, Key=f"runs/{run_id}/evaluation/report.html")["Body"].read()
    assert b"Planned vs actual" in report and planned["tokens"]["actual"].encode() in report
    passed = dict.fromkeys(
        s for s in execution["path"] if s in ("Train", "Evaluate", "Register", "Deploy", "DescribeEndpoint")
    )
    assert list(passed) == [
        "Train",
        "Evaluate",
        "Register",
        "Deploy",
        "DescribeEndpoint",
    ]


def test_dpo_on_spot_passes_its_gate_and_imports_into_bedrock(aws):
    """Spot training bounded by the spec, DPO scored by held-out preference accuracy, Bedrock import as
    the stack's Bedrock role, polled until Completed."""
    text = spec(method="dpo", steps=40, lr=0.002, spot=True, deploy="{target: bedrock_import}")
    execution = aws.run(text, data=PREFERENCE)
    assert execution["status"] == "SUCCEEDED", execution
    run_id = execution["run_id"]
    job = aws.training_job(run_id)
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    report = aws.artifact(run_id, "evaluation/report.json")
    assert report["primary"] == "preference_accuracy" and report["verdict"]["passed"], report["verdict"]
    outcome = aws.artifact(run_id, "outcome.json")
    assert outcome["deployment"]["target"] == "bedrock_import" and outcome["deployment"]["status"] == "Completed"
    (imported,) = aws.twin.imports.jobs.values()
    assert imported["roleArn"] == aws.environment["TRAINFORGE_BEDROCK_ROLE_ARN"] and imported["status"] == "Completed"


@pytest.mark.parametrize(
    ("instance", "image", "processes", "volume_key", "reason"),
    [
        ("ml.g5.2xlarge", "TRAINFORGE_IMAGE_URI", "1", False, "'cuda' was requested"),
        ("ml.trn1.32xlarge", "TRAINFORGE_NEURON_IMAGE_URI", "32", False, "no Neuron device"),
    ],
)
def test_accelerator_jobs_are_accepted_and_fail_loudly_without_their_device(
    aws, instance, image, processes, volume_key, reason
):
    """The g5 and trn requests pass every rule (no volume key on NVMe types; the Neuron image with a
    process per NeuronCore); their containers refuse to train on the CPU, and the run records why, with the
    job's log stream."""
    execution = aws.run(spec(instance=instance), data=SFT)
    assert execution["status"] == "FAILED" and execution["error"] == "TrainingFailed", execution.get("cause")
    run_id = execution["run_id"]
    job = aws.training_job(run_id)
    assert job["TrainingJobStatus"] == "Failed" and reason in job["FailureReason"]
    assert ("VolumeKmsKeyId" in job["ResourceConfig"]) is volume_key
    assert job["AlgorithmSpecification"]["TrainingImage"] == aws.environment[image]
    assert job["Environment"]["TRAINFORGE_NPROC_PER_NODE"] == processes
    failure = aws.artifact(run_id, "failure.json")
    assert (failure["state"], failure["error"]) == ("Train", "TrainingFailed")
    assert reason in failure["cause"] and "DeviceUnavailable" in failure["cause"]
    assert failure["log_uris"] and all(
        uri.startswith(f"cloudwatch:/aws/sagemaker/TrainingJobs/{run_id}-0/") for uri in failure["log_uris"]
    )
    assert aws.artifact(run_id, "outcome.json")["status"] == "failed"


def test_rejected_data_ends_the_run_at_validate_with_the_report_location(aws):
    bad = SFT + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n"
    execution = aws.run(spec(), data=bad)
    assert execution["status"] == "FAILED" and execution["error"] == "DatasetRejected"
    run_id = execution["run_id"]
    report_uri = f"s3://{aws.artifacts}/runs/{run_id}/dataset-report.json"
    assert report_uri in execution["cause"]
    failure = aws.artifact(run_id, "failure.json")
    assert (failure["state"], failure["error"], failure["report_uri"]) == ("Validate", "DatasetRejected", report_uri)
    assert "Train" not in execution["path"] and aws.artifact(run_id, "dataset-report.json")["errors"][0]["line"] == 61


def test_a_gate_failure_registers_the_model_as_rejected_and_deploys_nothing(aws):
    strict = spec().replace("min_improvement: 0.05", "min_improvement: 5.0")  # 500% better: impossible
    execution = aws.run(strict, data=SFT)
    assert execution["status"] == "FAILED" and execution["error"] == "GateFailed"
    packages = aws.sagemaker.list_model_packages(ModelPackageGroupName="support")["ModelPackageSummaryList"]
    assert [p["ModelApprovalStatus"] for p in packages] == ["Rejected"]
    assert "Deploy" not in execution["path"] and "NotifyRejected" in execution["path"]
    assert aws.artifact(execution["run_id"], "outcome.json")["status"] == "rejected"
