"""Every job-spec field is documented once, as its ``Field(description=...)``, and docs/job-spec.md names
every field (and no field the spec lacks), so neither can fall behind the other."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tests.conftest import ROOT
from trainforge.spec import JobSpec

DOC = ROOT / "docs" / "job-spec.md"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (also inside ``X | None``), or None for a plain value."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def spec_fields(model: type[BaseModel] = JobSpec, prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every field of the spec by its dotted YAML name (``data.limits.max_records``), sections included."""
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        yield dotted, field
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from spec_fields(nested, f"{dotted}.")


def _key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield f"{prefix}{key}"
            yield from _key_paths(child, f"{prefix}{key}.")


def documented_names(text: str) -> tuple[set[str], set[str]]:
    """(the key paths of the doc's YAML examples, the dotted names it writes in backticks)."""
    examples = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    keys = {path for block in examples for path in _key_paths(yaml.safe_load(block))}
    return keys, set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", text))


def test_the_walk_reaches_every_section_and_optional_sections():
    names = dict(spec_fields())
    assert {"data.limits.max_records", "deploy.rollout.policy", "tuning.ranges", "trigger.quiet_minutes"} <= set(names)
    assert "hyperparameters.lora_rank" in names and "data" in names


@pytest.mark.parametrize("name", [name for name, _ in spec_fields()])
def test_every_field_has_a_description(name):
    field = dict(spec_fields())[name]
    assert field.description and field.description.strip(), f"{name}: give it Field(description=...)"


def test_the_doc_names_every_field():
    keys, prose = documented_names(DOC.read_text())
    missing = [name for name, _ in spec_fields() if name not in keys | prose]
    assert not missing, f"docs/job-spec.md does not mention: {', '.join(missing)}"


def test_the_doc_example_names_no_field_the_spec_lacks():
    keys, _ = documented_names(DOC.read_text())
    assert keys, "docs/job-spec.md has no ```yaml example"
    unknown = sorted(keys - {name for name, _ in spec_fields()})
    assert not unknown, f"docs/job-spec.md's example has keys the spec does not: {', '.join(unknown)}"


def test_a_missing_mention_is_caught():
    """Given the doc without one field's line, the check names that field."""
    text = DOC.read_text()
    without = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("dpo_beta:"))
    keys, prose = documented_names(without)
    assert "hyperparameters.dpo_beta" not in keys | prose
