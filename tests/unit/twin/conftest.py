"""A twin with no images: for what needs no container (rules on the wire, Bedrock import, install/undo)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.twin import ImageRegistry, SageMakerTwin, VenvBuilder
from tests.twin.fixtures import MOTO_CONFIG


class Recorded:
    """A rules table that refuses what ``refuse`` matches and records every request it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.refuse: dict[str, str] = {}

    def check(self, api: str, request: dict[str, Any], ctx: Any) -> list[str]:
        self.seen.append((api, request))
        return [self.refuse[api]] if api in self.refuse else []


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def bare_twin(aws_env: None, tmp_path: Path, recorded: Recorded) -> Iterator[SageMakerTwin]:
    images = ImageRegistry(VenvBuilder(tmp_path / "cache", tmp_path / "session"))
    with mock_aws(config=MOTO_CONFIG), SageMakerTwin(images, tmp_path / "twin", rules=recorded) as twin:
        yield twin


def role(service: str, name: str) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"]
