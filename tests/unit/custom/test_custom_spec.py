"""method: custom in the job spec: script mode or a container of one's own, and what does not go with it."""

from __future__ import annotations

import pytest

from trainforge.errors import SpecInvalid
from trainforge.spec import parse_spec

BASE = "name: mine\nbase_model: tiny\ndata: {train: datasets/mine/}\nmethod: custom\n"
SCRIPT = "custom: {entry_point: train.py, source: jobs/mine/src/, framework: jax}\n"


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(SpecInvalid) as raised:
        parse_spec(text, "jobs/mine.yaml")
    return raised.value.details


def test_a_script_mode_spec_parses_with_its_own_hyperparameters() -> None:
    spec = parse_spec(
        BASE + "custom: {entry_point: train.py, source: jobs/mine/src/, framework: pytorch, "
        "requirements: requirements.txt, hyperparameters: {epochs: 3, lr: 0.1, name: x, flag: true}}\n"
    )
    assert spec.custom is not None and spec.custom.framework == "pytorch"
    assert spec.custom.hyperparameters == {"epochs": 3, "lr": 0.1, "name": "x", "flag": True}


def test_a_container_of_ones_own_is_an_ecr_uri_alone() -> None:
    spec = parse_spec(BASE + "custom: {image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1}\n")
    assert spec.custom is not None and spec.custom.image is not None
    [(path, line, message)] = problems(BASE + "custom: {image: docker.io/me/mine:1}\n")
    assert (path, line) == ("custom", 5) and "ECR image URI" in message
    [(_, _, message)] = problems(
        BASE + "custom: {image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:1, entry_point: a.py}\n"
    )
    assert "leave out entry_point" in message


def test_script_mode_names_what_it_misses_and_refuses_paths_outside_the_source() -> None:
    [(path, _, message)] = problems(BASE + "custom: {entry_point: train.py, source: jobs/mine/src/}\n")
    assert path == "custom" and "missing: framework" in message
    [(_, _, message)] = problems(BASE + "custom: {entry_point: ../train.py, source: s/, framework: jax}\n")
    assert "entry_point must be a relative path inside source" in message
    [(path, _, message)] = problems(BASE + "custom: {entry_point: t.py, source: s/, framework: mxnet}\n")
    assert path == "custom.framework" and "'pytorch', 'jax' or 'tensorflow'" in message


def test_method_custom_and_the_section_go_together() -> None:
    [(_, _, message)] = problems(BASE)
    assert "method custom and the custom section go together" in message
    [(_, _, message)] = problems(BASE.replace("method: custom", "method: lora") + SCRIPT)
    assert "go together" in message


def test_the_built_in_loops_settings_are_refused_not_ignored() -> None:
    [(_, _, message)] = problems(BASE + SCRIPT + "hyperparameters: {max_steps: 5}\n")
    assert "custom.hyperparameters" in message
    [(_, _, message)] = problems(BASE + SCRIPT + "tuning: {max_jobs: 2}\n")
    assert "tuning" in message


def test_a_model_scored_by_its_own_evaluation_is_not_deployed() -> None:
    own = "custom: {entry_point: t.py, source: s/, framework: jax, evaluation_entry_point: e.py}\n"
    [(_, _, message)] = problems(BASE + own)
    assert "deploy.target: none" in message
    assert parse_spec(BASE + own + "deploy: {target: none}\n").custom is not None


def test_the_plan_refuses_a_custom_job_on_nothing_the_built_in_loops_estimates_say() -> None:
    """A full fine-tune of 8B on one 24 GiB GPU is refused for the built-in loop; the same spec with your own
    code gets the estimate as a note, not a refusal (its script's memory is its own)."""
    from tests.unit.planning.shapes import LLAMA_8B
    from tests.unit.planning.shapes import spec as plan_spec
    from tests.unit.planning.test_plan import plan

    custom = "{entry_point: t.py, source: s/, framework: pytorch}"
    own = plan(plan_spec(method="custom", custom=custom, compute="{instance_type: ml.g5.xlarge}"), LLAMA_8B)
    builtin = plan(plan_spec(method="full", compute="{instance_type: ml.g5.xlarge}"), LLAMA_8B)
    assert builtin.refusals and own.refusals == []
    assert any(note.startswith("method custom: memory, time and cost are estimated") for note in own.notes)
