"""Reading IAM out of the synthesized templates, and evaluating the preventive denies against a request's
condition keys the way IAM does for the operators those denies use
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

from aws_cdk.assertions import Template

_TEMPLATES: dict[int, Template] = {}
_RESOURCES: dict[tuple[int, str], dict] = {}


def template(synthesized, stack: str) -> Template:
    """Template.from_stack serializes the whole stack: once per stack and session."""
    construct = synthesized[stack]
    if id(construct) not in _TEMPLATES:
        _TEMPLATES[id(construct)] = Template.from_stack(construct)
    return _TEMPLATES[id(construct)]


def resources(synthesized, stack: str, kind: str) -> dict:
    key = (id(synthesized[stack]), kind)
    if key not in _RESOURCES:
        _RESOURCES[key] = template(synthesized, stack).find_resources(kind)
    return _RESOURCES[key]


def role_statements(synthesized, stack: str, role_prefix: str) -> list[dict]:
    """Every statement of the inline policies attached to the roles whose logical id starts with the prefix."""
    return [
        statement
        for logical_id, policy in resources(synthesized, stack, "AWS::IAM::Policy").items()
        if logical_id.startswith(role_prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def allowed(statements: list[dict], action: str) -> list[dict]:
    return [s for s in statements if s["Effect"] == "Allow" and action in actions(s)]


def by_sid(statements: list[dict]) -> dict[str, dict]:
    return {s["Sid"]: s for s in statements if "Sid" in s}


def text(value: object) -> str:
    return json.dumps(value)


def _values(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _holds(operator: str, key: str, expected: object, request: dict[str, object]) -> bool:
    wanted, present = _values(expected), key in request
    values = _values(request.get(key))
    if operator == "Null":
        return (not present) == (wanted == ["true"])
    if operator == "Bool":
        return present and all(v.lower() in wanted for v in values)
    if operator == "StringEquals":
        return present and any(v in wanted for v in values)
    like = {"StringLike": False, "StringNotLike": True}
    qualifier, _, base = operator.rpartition(":")
    if base in like:
        matches = [any(fnmatchcase(v, pattern) for pattern in wanted) != like[base] for v in values]
        if qualifier == "ForAnyValue":
            return any(matches)
        if qualifier == "ForAllValues":
            return all(matches)
        return present and all(matches)
    raise NotImplementedError(operator)


def denied_by(statements: list[dict], action: str, request: dict[str, object]) -> list[str]:
    """The Sids of the Deny statements that refuse ``action`` with these condition keys (absent = not sent)."""
    return [
        s["Sid"]
        for s in statements
        if s["Effect"] == "Deny"
        and action in actions(s)
        and all(
            _holds(operator, key, expected, request)
            for operator, entries in s.get("Condition", {}).items()
            for key, expected in entries.items()
        )
    ]
