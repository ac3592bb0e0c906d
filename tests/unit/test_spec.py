"""The job spec: unknown or invalid keys are errors naming the key, its line and what is allowed."""

from __future__ import annotations

import json

import pytest

from trainforge.errors import SpecInvalid
from trainforge.spec import JobSpec, parse_spec

GOOD = """\
name: support-assistant
base_model: lite
method: lora
data:
  train: datasets/support/train.jsonl
  pii: redact
hyperparameters: {epochs: 2, learning_rate: 2.0e-4, batch_size: 8, max_seq_len: 1024, lora_rank: 16}
compute: {instance_type: ml.trn1.32xlarge, instance_count: 1, spot: true, max_runtime_hours: 24}
evaluation: {min_improvement: 0.05, max_forgetting: 0.05}
deploy: {target: sagemaker_endpoint, approval: auto}
schedule: rate(7 days)
"""


def test_good_spec_yaml_and_json_agree():
    spec = parse_spec(GOOD, "jobs/support.yaml")
    assert spec.hyperparameters.lora_rank == 16 and spec.data.pii == "redact"
    assert parse_spec(json.dumps(spec.model_dump()), "jobs/support.json") == spec


def test_unknown_key_names_key_line_and_allowed_keys():
    text = GOOD.replace("  pii: redact", "  pii: redact\n  valdation: datasets/support/val.jsonl")
    with pytest.raises(SpecInvalid) as info:
        parse_spec(text, "jobs/support.yaml")
    message = str(info.value)
    assert "jobs/support.yaml:7 data.valdation: unknown key 'valdation'" in message
    assert "allowed here:" in message and "validation" in message
    assert info.value.details == [
        ("data.valdation", 7, message.split(": ", 2)[-1].split("\n")[0])
    ] or info.value.details[0][:2] == ("data.valdation", 7)


def test_invalid_value_names_line():
    with pytest.raises(SpecInvalid) as info:
        parse_spec(GOOD.replace("method: lora", "method: magic"), "job.yaml")
    assert "job.yaml:3 method:" in str(info.value)
    assert "'lora'" in str(info.value)


def test_nested_flow_mapping_value_error_line():
    with pytest.raises(SpecInvalid) as info:
        parse_spec(GOOD.replace("batch_size: 8", "batch_size: -1"), "job.yaml")
    assert "job.yaml:7 hyperparameters.batch_size:" in str(info.value)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("name: support-assistant", "name: Support Assistant"), "name:"),
        (("name: support-assistant", "name: support--assistant"), "single '-'"),  # Bedrock refuses '--'
        (("schedule: rate(7 days)", "schedule: every week"), "EventBridge Scheduler expression"),
        (("schedule: rate(7 days)", "schedule: rate(0 days)"), "EventBridge Scheduler expression"),
        (("schedule: rate(7 days)", "schedule: cron(0 3 * * *)"), "six fields"),  # a Unix cron has five
        (("instance_type: ml.trn1.32xlarge", "instance_type: p4d"), "SageMaker instance type"),
        (("method: lora", "method: dpo"), "method dpo needs data.format preference"),
        (("approval: auto}", "approval: auto, rollout: {policy: canary}}"), "canary needs deploy.instance_count"),
        (("name: support-assistant", "name: support-assistant\ntuning: {refit: true, selection_fraction: 0}"), "refit"),
    ],
)
def test_field_and_cross_field_checks(change, needle):
    text = GOOD.replace(*change)
    if "dpo" in change[1]:
        text = text.replace("  pii: redact", "  format: chat")
    with pytest.raises(SpecInvalid, match=needle.replace("(", r"\(")):
        parse_spec(text)


def test_a_canary_needs_two_instances_on_a_sagemaker_endpoint_only():
    """SageMaker's canary slice is at most half a variant's instances; locally a canary is a replace."""
    canary = "approval: auto, rollout: {policy: canary}"
    assert parse_spec(GOOD.replace("approval: auto", f"{canary}, instance_count: 2")).deploy.instance_count == 2
    assert parse_spec(GOOD.replace("target: sagemaker_endpoint, approval: auto", f"target: local, {canary}"))
    with pytest.raises(SpecInvalid, match="with one instance use policy ab"):
        parse_spec(GOOD.replace("approval: auto", canary))


def test_not_yaml_and_not_a_mapping():
    with pytest.raises(SpecInvalid, match=r"x\.yaml:2"):
        parse_spec("name: a\n  bad: [unclosed", "x.yaml")
    with pytest.raises(SpecInvalid, match="mapping"):
        parse_spec("- a\n- b", "x.yaml")


def test_examples_validate(pytestconfig):
    for path in sorted((pytestconfig.rootpath / "examples" / "jobs").glob("*.yaml")):
        assert isinstance(parse_spec(path.read_text(), str(path)), JobSpec)


def test_the_format_choices_are_auto_and_the_data_formats():
    """One list of data formats (contracts.DataFormat): the spec, the training config and the CLI read it."""
    from typing import get_args

    from trainforge.contracts import DataFormat
    from trainforge.spec import FormatChoice

    assert get_args(FormatChoice) == ("auto", *get_args(DataFormat))
