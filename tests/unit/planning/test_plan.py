"""The plan as a whole: what it refuses and why, with the alternative; quota hints; planned vs actual; the
contract's schema, held to a snapshot so that a consumer of plan.json notices any change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.planning.shapes import LLAMA_8B, NEOX, SMOLLM2, report, spec
from trainforge.contracts import Plan, TrainingResult
from trainforge.instances import instance_type
from trainforge.planning.machines import Machine
from trainforge.planning.memory import GiB
from trainforge.planning.plan import PlanInputs, make_plan, planned_vs_actual
from trainforge.planning.prices import load_prices
from trainforge.planning.quotas import judged, needed_quotas

SCHEMA = Path(__file__).parent / "plan.schema.json"
FILES = {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"}


def machine(name: str) -> Machine:
    return Machine.from_instance(instance_type(name))


def plan(job, config=SMOLLM2, types=("ml.g5.2xlarge",), **extra) -> Plan:
    inputs = {
        "spec": job,
        "report": extra.pop("report", None) or report(),
        "config": config,
        "files": FILES,
        "base_bytes": 270_000_000,
        "machines": [machine(name) for name in types],
        "evaluation": machine("ml.g5.xlarge"),
        "prices": load_prices(),
        "region": "us-east-1",
        **extra,
    }
    return make_plan(PlanInputs(**inputs))


def test_full_fine_tuning_of_8b_on_a_24_gib_gpu_is_refused_naming_what_fits():
    job = spec(method="full", compute="{instance_type: ml.g5.xlarge}")
    refused = plan(job, LLAMA_8B, types=("ml.g5.xlarge", "ml.g5.12xlarge", "ml.p4d.24xlarge"))
    requested = refused.requested
    assert requested.verdict == "does_not_fit" and requested.time is None and requested.memory is not None
    assert requested.memory.requested_bytes > 100 * GiB > 24 * GiB > requested.memory.budget_bytes
    (reason,) = refused.refusals
    assert reason.startswith("full fine-tuning of pro (8.0B parameters) does not fit ml.g5.xlarge")
    assert "instead: compute.instance_type: " in reason and refused.smallest_fitting in reason
    # on the four-GPU type the lever that fits is named; the A100s fit once the state is sharded
    options = {o.instance_type: o for o in refused.instances}
    assert options["ml.g5.12xlarge"].memory.change == "method: lora + distributed: fsdp"
    assert options["ml.p4d.24xlarge"].memory.change == "distributed: fsdp"


def test_tuning_a_model_sharded_over_several_devices_is_refused_naming_the_alternative():
    """A sharded (FSDP) trial computes no objective: the tuner could rank none of its trials."""
    tuning = "{max_jobs: 4, parallel: 2}"
    sharded = spec(compute="{instance_type: ml.g5.12xlarge}", hyperparameters="{distributed: fsdp}", tuning=tuning)
    (reason,) = plan(sharded, SMOLLM2, types=("ml.g5.12xlarge",)).refusals
    assert reason.startswith("tuning with distributed: fsdp on ml.g5.12xlarge (4 processes)")
    assert "instead: distributed: ddp" in reason
    replicated = spec(compute="{instance_type: ml.g5.12xlarge}", tuning=tuning)
    assert plan(replicated, SMOLLM2, types=("ml.g5.12xlarge",)).refusals == []
    one_device = spec(compute="{instance_type: ml.g5.2xlarge}", hyperparameters="{distributed: fsdp}", tuning=tuning)
    assert plan(one_device, SMOLLM2).refusals == []  # one process: nothing is sharded


def test_a_small_lora_fits_with_time_cost_and_the_trainium_comparison():
    fine = plan(spec(compute="{instance_type: ml.g5.2xlarge}", hyperparameters="{max_seq_len: 256}"), SMOLLM2)
    assert fine.refusals == [] and fine.requested.verdict == "fits"
    assert fine.requested.time is not None and fine.requested.cost is not None
    assert fine.requested.cost.training_usd_high and fine.requested.cost.training_usd_high < 1
    assert fine.trainium_vs_gpu is not None and fine.trainium_vs_gpu.startswith("GPU ml.g5.2xlarge: training ")
    assert " vs Trainium ml.trn1." in fine.trainium_vs_gpu
    assert any(o.instance_type.startswith("ml.trn1.") for o in fine.instances[1:])
    assert "assumed throughput" in fine.notes[-1]


def test_a_micro_batch_the_run_will_lower_itself_fits_after_adjustment():
    job = spec(hyperparameters="{batch_size: 64, max_seq_len: 4096}", compute="{instance_type: ml.g5.xlarge}")
    adjusted = plan(job, SMOLLM2, types=("ml.g5.xlarge",))
    assert adjusted.refusals == [] and adjusted.requested.verdict == "adjusted"
    assert adjusted.requested.memory is not None and adjusted.requested.memory.adjustments["batch_size"] < 64


def test_an_architecture_bedrock_does_not_import_is_refused_in_aws_and_noted_locally():
    job = spec(deploy="{target: bedrock_import}")
    (reason,) = plan(job, NEOX).refusals
    assert "deploy.target bedrock_import cannot take this model" in reason
    assert "instead: deploy.target: sagemaker_endpoint" in reason
    local = plan(job, NEOX, local=True)
    assert local.refusals == [] and any("in AWS this spec would be refused" in note for note in local.notes)


def test_quotas_are_named_and_an_empty_one_refuses_the_run():
    job = spec(compute="{instance_type: ml.g5.2xlarge, spot: true}", deploy="{instance_type: ml.g5.xlarge}")
    names = [hint.name for hint in needed_quotas(job, "ml.g5.xlarge")]
    assert names == [
        "ml.g5.2xlarge for spot training job usage",
        "ml.g5.xlarge for processing job usage",
        "ml.g5.xlarge for endpoint usage",
    ]
    listed = {names[0]: ("L-TRAIN", 0.0), names[1]: ("L-EVAL", 2.0)}
    assert [h.status for h in judged(needed_quotas(job, "ml.g5.xlarge"), listed)] == ["too_low", "ok", "unknown"]
    refused = plan(job, SMOLLM2, quotas=listed)
    assert any("'ml.g5.2xlarge for spot training job usage' (L-TRAIN) is 0" in r for r in refused.refusals)
    assert plan(job, SMOLLM2).quotas[0].status == "unknown"  # not read: named, not judged


def test_a_run_longer_than_its_max_runtime_is_refused():
    job = spec(
        hyperparameters="{epochs: 2000, max_seq_len: 1024}",
        compute="{instance_type: ml.m5.xlarge, max_runtime_hours: 1}",
    )
    refused = plan(job, SMOLLM2, types=("ml.m5.xlarge",))
    assert any("over compute.max_runtime_hours 1" in reason for reason in refused.refusals)


def test_rejected_data_is_refused_naming_the_first_error():
    """The pipeline stops such a run at Validate; `trainforge plan` must not call it fine."""
    from trainforge.contracts import DataIssue

    issue = DataIssue(file="train.jsonl", line=7, field="$.messages", code="missing_field", message="is required")
    rejected = report().model_copy(update={"ok": False, "errors": [issue], "error_counts": {"missing_field": 3}})
    refused = plan(spec(), report=rejected)
    assert refused.refusals[0].startswith("the data is rejected (3 errors; the first: train.jsonl:7")
    assert not plan(spec()).refusals


def test_a_config_the_estimate_does_not_know_plans_without_memory():
    whisper = {"model_type": "whisper", "d_model": 384, "architectures": ["WhisperForConditionalGeneration"]}
    unknown = plan(spec(deploy="{target: none}"), whisper)
    assert unknown.requested.verdict == "unknown" and unknown.refusals == []
    assert "not estimated" in unknown.notes[0]


def test_planned_vs_actual_reads_the_training_result():
    fine = plan(spec(compute="{instance_type: ml.g5.2xlarge, spot: false}"), SMOLLM2)
    result = TrainingResult(
        run_id="r",
        model_uri="s3://a/m/",
        metrics={},
        metrics_uri="s3://a/m.jsonl",
        checkpoint_uri="s3://a/c/",
        wall_seconds=75.0,
        tokens_seen=21000,
        billable_seconds=360.0,
    )
    rows = {row.figure: row for row in planned_vs_actual(fine, result)}
    assert rows["training time"].actual == "75 s" and rows["tokens"].actual == "21,000"
    assert rows["cost"].actual == f"${360 / 3600 * 1.515:.2f} (360 billed s)"


def test_the_plan_schema_is_the_snapshot():
    """plan.json is read by people and tools: a change to its schema is deliberate (write
    ``Plan.model_json_schema()`` to plan.schema.json, sorted, with the change)."""
    schema = Plan.model_json_schema()
    assert schema == json.loads(SCHEMA.read_text()), "Plan's JSON schema changed: update plan.schema.json"


@pytest.mark.parametrize("job", [spec(), spec(method="full", compute="{instance_type: ml.g5.xlarge}")])
def test_a_plan_round_trips_through_its_json(job):
    made = plan(job, LLAMA_8B if job.method == "full" else SMOLLM2)
    assert Plan.model_validate_json(made.model_dump_json()) == made


def test_the_evaluation_report_shows_planned_against_actual():
    from trainforge.contracts import EvaluationReport, PlannedActual
    from trainforge.evaluation.html_report import render

    report = EvaluationReport(run_id="r", base_model="b", tuned_model_uri="t", examples=1, metrics=[], forgetting=None)
    rows = [PlannedActual(figure="training time", planned="68-93 s", actual="<2 min>")]
    html = render(report, [], rows)
    assert "<h2>Planned vs actual</h2>" in html and "<td>68-93 s</td><td>&lt;2 min&gt;</td>" in html
    assert "Planned vs actual" not in render(report, [])


def test_a_bedrock_import_in_a_region_without_it_is_refused_naming_the_regions():
    job = spec(deploy="{target: bedrock_import}")
    assert plan(job).refusals == []
    (reason,) = plan(job, region="eu-west-1").refusals
    assert "offered in us-east-1, us-east-2, us-west-2, eu-central-1 only, not in eu-west-1" in reason
    assert "instead: deploy.target: sagemaker_endpoint" in reason
