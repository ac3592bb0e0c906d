"""What the twin reads from a Dockerfile, and what it refuses to guess."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import ROOT
from tests.twin.dockerfile import DockerfileError, parse_dockerfile


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_a_dockerfile_gives_base_env_copies_installs_and_entrypoint(tmp_path):
    recipe = parse_dockerfile(
        write(
            tmp_path,
            """# comment
ARG BASE=registry.example/base:1
FROM ${BASE}
ENV A=1 \\
    B="two words"
ENV LEGACY value with spaces
WORKDIR /opt/app
COPY pyproject.toml README.md ./
COPY src ./src
RUN apt-get update && pip install ".[train, serve]" extra-package==1.2 \\
    && rm -rf /tmp/x
ENTRYPOINT ["app-train", "--flag"]
""",
        )
    )

    assert recipe.base == "registry.example/base:1"
    assert recipe.env == {"A": "1", "B": "two words", "LEGACY": "value with spaces"}
    assert recipe.workdir == PurePosixPath("/opt/app")
    assert [c.destination for c in recipe.copies] == [PurePosixPath("/opt/app"), PurePosixPath("/opt/app/src")]
    assert recipe.project_extras == ("train", "serve")
    assert recipe.requirements == ("extra-package==1.2",)
    assert recipe.entrypoint == ("app-train", "--flag")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.neuron"])
def test_the_repositorys_images_install_the_project_and_train(dockerfile):
    recipe = parse_dockerfile(ROOT / "training_image" / dockerfile)

    assert recipe.installs_project and recipe.project_extras
    assert recipe.entrypoint == ("trainforge-train",)
    assert recipe.env["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("FROM a AS build\nFROM b\n", "multi-stage"),
        ("FROM a\nRUN pip install -r requirements.txt\n", "pip install -r"),
        ("FROM a\nWORKDIR /app\nRUN pip install .\n", "nothing was copied"),
        ("RUN true\n", "no FROM"),
    ],
)
def test_what_the_twin_cannot_emulate_is_refused_with_its_line(tmp_path, text, complaint):
    with pytest.raises(DockerfileError, match=complaint):
        parse_dockerfile(write(tmp_path, text))
