"""cdk-nag: four rule packs on every synth, and every accepted finding acknowledged here, in one place,
with its reason. A test pins the number of acknowledgements so a new one is always a reviewed change."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks
from constructs import IConstruct

PACKS = (AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks)


@dataclass(frozen=True)
class Acknowledgement:
    rule: str
    reason: str


ACKNOWLEDGEMENTS: list[tuple[str, Acknowledgement]] = []


def apply_nag(app: cdk.App, *stacks: cdk.Stack) -> None:
    for pack in PACKS:
        cdk.Validations.of(app).add_plugins(pack(app))
