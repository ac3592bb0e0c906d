"""The Plan step on the deployed stacks (moto, SageMaker played by the twin): a run that cannot succeed is
refused after validation and before any SageMaker call, with the reason and the alternative. (A run that
goes ahead keeps its plan and reports planned against actual: tests/integration/test_aws_pipeline.py.)

The refused base models are a config.json (and the tiny model's tokenizer) alone: the plan reads no
weights, and a refused run never loads any.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_aws_pipeline import SFT, spec
from tests.unit.planning.shapes import LLAMA_8B, NEOX


def _upload_config(aws, tiny_model_dir: Path, model_id: str, config: dict) -> str:
    """base-models/MODEL_ID/ with ``config`` and the tiny model's tokenizer files; its s3:// URI."""
    for path in tiny_model_dir.iterdir():
        if path.name not in ("config.json", "model.safetensors"):
            aws.s3.upload_file(str(path), aws.artifacts, f"base-models/{model_id}/{path.name}")
    aws.s3.put_object(Bucket=aws.artifacts, Key=f"base-models/{model_id}/config.json", Body=json.dumps(config).encode())
    return f"s3://{aws.artifacts}/base-models/{model_id}/"


def _refused_at_plan(aws, execution: dict) -> dict:
    """The run ended at Plan: no training job was ever requested, the failure and the plan are kept."""
    assert execution["status"] == "FAILED" and execution["error"] == "PlanRefused", execution.get("cause")
    assert "Plan" in execution["path"] and "Prepare" not in execution["path"] and "Train" not in execution["path"]
    assert aws.sagemaker.list_training_jobs()["TrainingJobSummaries"] == [] and not aws.twin.training_jobs
    run_id = execution["run_id"]
    failure = aws.artifact(run_id, "failure.json")
    assert (failure["state"], failure["error"]) == ("Plan", "PlanRefused")
    assert "plan.json" in failure["hint"]
    plan = aws.artifact(run_id, "plan.json")
    assert plan["refusals"] and aws.artifact(run_id, "outcome.json")["status"] == "failed"
    return plan


def test_full_fine_tuning_of_an_8b_model_on_ml_g5_xlarge_is_refused_before_training(aws, tiny_model_dir):
    _upload_config(aws, tiny_model_dir, "llama-3.1-8b-instruct", LLAMA_8B)
    text = spec(method="full", instance="ml.g5.xlarge").replace("base_model: tiny", "base_model: pro")
    execution = aws.run(text, data=SFT)
    plan = _refused_at_plan(aws, execution)
    assert (
        "does not fit ml.g5.xlarge" in execution["cause"]
        and "instead: compute.instance_type: ml." in execution["cause"]
    )
    requested = plan["instances"][0]
    assert requested["instance_type"] == "ml.g5.xlarge" and requested["verdict"] == "does_not_fit"
    assert plan["smallest_fitting"] in execution["cause"]


def test_an_architecture_bedrock_cannot_import_is_refused_before_training(aws, tiny_model_dir):
    uri = _upload_config(aws, tiny_model_dir, "neox-test", NEOX)
    text = spec(deploy="{target: bedrock_import}").replace("base_model: tiny", f"base_model: {uri}")
    execution = aws.run(text, data=SFT)
    plan = _refused_at_plan(aws, execution)
    assert "Bedrock Custom Model Import does not accept model_type 'gpt_neox'" in execution["cause"]
    assert "instead: deploy.target: sagemaker_endpoint" in execution["cause"]
    assert not plan["deployment"]["ok"] and not aws.twin.imports.jobs


def test_an_empty_training_quota_is_found_before_the_run(aws):
    aws.twin.quotas.values["ml.m5.xlarge for training job usage"] = 0
    execution = aws.run(spec(), data=SFT)
    plan = _refused_at_plan(aws, execution)
    assert "'ml.m5.xlarge for training job usage'" in execution["cause"] and "is 0" in execution["cause"]
    assert [q["status"] for q in plan["quotas"]] == ["too_low", "ok", "ok"]


def test_a_gpu_quota_left_at_a_new_accounts_default_of_0_is_found_before_the_run(aws):
    # never raised: ListServiceQuotas leaves it out, ListAWSDefaultServiceQuotas says 0
    del aws.twin.quotas.values["ml.g5.xlarge for training job usage"]
    execution = aws.run(spec(instance="ml.g5.xlarge", deploy="{target: none}"), data=SFT)
    plan = _refused_at_plan(aws, execution)
    assert "'ml.g5.xlarge for training job usage'" in execution["cause"] and "is 0" in execution["cause"]
    assert plan["instances"][0]["verdict"] != "does_not_fit"  # refused for the quota alone
    assert [q["status"] for q in plan["quotas"]] == ["too_low", "ok"]
