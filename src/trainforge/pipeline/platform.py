"""What differs between local mode and AWS, and nothing else: the roots, the image, the caches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainforge.settings import Settings


@dataclass(frozen=True)
class Platform:
    data_root: str
    artifacts_uri: str
    local: bool
    #: the CUDA image (also CPU instance types); "local" in local mode
    image_uri: str = "local"
    #: the Trainium image; "" when none was built
    neuron_image_uri: str = ""
    #: local mode: where base models are built or downloaded once
    cache_dir: Path = Path(".trainforge/cache")
    #: AWS: the region, whose registry of AWS's framework containers custom jobs run from
    region: str = ""
    #: local mode: where custom jobs' virtualenvs are built once and shared (trainforge.custom.venvs)
    venv_cache: Path | None = None
    #: AWS: the stack's account and prefix, whose PREFIX-custom/ repositories a custom.image comes from
    account: str = ""
    prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, local: bool) -> Platform:
        return cls(
            data_root=settings.resolved_data_uri(),
            artifacts_uri=settings.resolved_artifacts_uri(),
            local=local,
            image_uri="local" if local else settings.image_uri,
            neuron_image_uri="" if local else settings.neuron_image_uri,
            cache_dir=settings.workspace.resolve() / "cache",
            venv_cache=settings.venv_cache,
            account=settings.sagemaker_role_arn.split(":")[4] if settings.sagemaker_role_arn.count(":") >= 5 else "",
            prefix=settings.alarm_prefix,
        )
