"""Deployers behind one protocol: put a registered model version somewhere clients can call it."""

from __future__ import annotations

from typing import Protocol

from trainforge.contracts import Deployment, ModelVersion


class Deployer(Protocol):
    def deploy(self, version: ModelVersion) -> Deployment: ...


__all__ = ("Deployer",)
