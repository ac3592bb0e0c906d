"""`trainforge plan`: a readable table for several instance types, JSON that is the Plan contract, exit 1
when the pipeline would refuse the run, and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import chat
from tests.unit.planning.shapes import LLAMA_8B
from trainforge.cli import main
from trainforge.contracts import Plan


@pytest.fixture
def job(tmp_path: Path, tiny_model_dir: Path):
    """A data root with a chat dataset and a job spec on the given base model and method."""

    def write(base: str = "tiny", method: str = "lora", compute: str = "{instance_type: ml.g5.2xlarge}") -> Path:
        root = tmp_path / "data"
        rows = [chat(f"question {i} about the order", f"the answer is {i}") for i in range(80)]
        (root / "datasets/chat").mkdir(parents=True, exist_ok=True)
        (root / "datasets/chat/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        spec = root / "jobs/planned.yaml"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(
            f"name: planned\nbase_model: {base}\nmethod: {method}\n"
            "data: {train: datasets/chat/train.jsonl, validation_fraction: 0.1, pii: redact}\n"
            f"hyperparameters: {{epochs: 2, batch_size: 4, max_seq_len: 128}}\ncompute: {compute}\n"
            "deploy: {target: sagemaker_endpoint, instance_type: ml.g5.xlarge, max_model_len: 512}\n"
        )
        return spec

    return write


def _workspace(tmp_path: Path, tiny_model_dir: Path) -> list[str]:
    cache = tmp_path / "ws" / "cache" / "base-models" / "tiny-llama-test"
    shutil.copytree(tiny_model_dir, cache, dirs_exist_ok=True)  # the local tier, as materialize caches it
    return ["--workspace", str(tmp_path / "ws")]


def test_a_table_of_three_instance_types(job, tmp_path, tiny_model_dir, capsys):
    spec = job()
    types = ["--instance-type", "ml.g6.xlarge", "--instance-type", "ml.trn1.2xlarge"]
    assert main(["plan", str(spec), *types, *_workspace(tmp_path, tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("ml.g5.2xlarge *", "ml.g6.xlarge", "ml.trn1.2xlarge"):
        assert name in out
    assert "Instance types (us-east-1, prices as of" in out and "will it deploy (sagemaker_endpoint)? yes" in out
    assert "quota 'ml.g5.2xlarge for spot training job usage'" in out
    # nothing was written: no run folder, no redacted copy of the data
    assert not (tmp_path / "ws" / "artifacts").exists()


def test_json_is_the_plan_contract(job, tmp_path, tiny_model_dir, capsys):
    spec = job()
    assert (
        main(["plan", str(spec), "--json", "--instance-type", "ml.m5.xlarge", *_workspace(tmp_path, tiny_model_dir)])
        == 0
    )
    plan = Plan.model_validate_json(capsys.readouterr().out)  # extra="forbid": any stray field fails here
    assert [o.instance_type for o in plan.instances][:2] == ["ml.g5.2xlarge", "ml.m5.xlarge"]
    # the split is the report's (by example hash): every example is on one side of it
    assert plan.work.examples + plan.work.evaluation_examples == 80 and plan.work.tokenizer == "tiny-llama-test"


def test_a_run_the_pipeline_would_refuse_exits_1_with_the_reason(job, tmp_path, tiny_model_dir, capsys):
    folder = tmp_path / "llama-8b"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "config.json").write_text(json.dumps(LLAMA_8B))
    (folder / "model.safetensors").unlink()
    spec = job(base=folder.as_uri(), method="full", compute="{instance_type: ml.g5.xlarge}")
    assert main(["plan", str(spec), *_workspace(tmp_path, tiny_model_dir)]) == 1
    out = capsys.readouterr().out
    assert "refused:" in out and "does not fit ml.g5.xlarge" in out and "instead: compute.instance_type" in out


def test_a_price_file_and_a_bad_one(job, tmp_path, tiny_model_dir, capsys):
    spec = job()
    prices = tmp_path / "prices.yaml"
    prices.write_text("as_of: 2026-11-30\nregions: {eu-west-1: {ml.g5.2xlarge: {on_demand: 2.0}}}\n")
    args = ["plan", str(spec), "--json", "--region", "eu-west-1", "--prices", str(prices)]
    assert main([*args, *_workspace(tmp_path, tiny_model_dir)]) == 0
    plan = Plan.model_validate_json(capsys.readouterr().out)
    assert plan.prices_as_of == "2026-11-30" and plan.requested.cost.on_demand_usd_per_hour == 2.0
    prices.write_text("regions: {eu-west-1: {ml.g5.2xlarge: {hourly: 2.0}}}\n")
    assert main([*args, *_workspace(tmp_path, tiny_model_dir)]) == 2
    assert "not a price file (regions.eu-west-1.ml.g5.2xlarge.hourly" in " ".join(capsys.readouterr().err.split())
