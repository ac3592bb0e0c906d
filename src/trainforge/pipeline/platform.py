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
    image_uri: str = "local"
    #: local mode: where base models are built or downloaded once
    cache_dir: Path = Path(".trainforge/cache")

    @classmethod
    def from_settings(cls, settings: Settings, *, local: bool, image_uri: str = "local") -> Platform:
        return cls(
            data_root=settings.resolved_data_uri(),
            artifacts_uri=settings.resolved_artifacts_uri(),
            local=local,
            image_uri=image_uri,
            cache_dir=settings.workspace.resolve() / "cache",
        )
