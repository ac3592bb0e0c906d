"""The layers of the library and what each may import (docs/architecture.md, "Import rules"): the
modules the Lambdas ship never import torch or transformers, and no module reaches across a layer it
should not know about. Lazy imports inside functions count too."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "trainforge"
LIGHT = [
    "trainforge.contracts",
    "trainforge.errors",
    "trainforge.spec",
    "trainforge.catalog",
    "trainforge.instances",
    "trainforge.planning",
    "trainforge.planning.plan",
    "trainforge.store",
    "trainforge.settings",
    "trainforge.data",
    "trainforge.data.validation",
    "trainforge.data.report",
    "trainforge.media",
    "trainforge.media.checks",
    "trainforge.evaluation.gate",
    "trainforge.pipeline",
    "trainforge.pipeline.handlers",
    "trainforge.pipeline.endpoint_handlers",
    "trainforge.pipeline.continuous_handlers",
    "trainforge.pipeline.schedules",
    "trainforge.pipeline.plan_step",
    "trainforge.registry",
    "trainforge.aws",
    "trainforge.aws.sagemaker_requests",
    "trainforge.tuning.amt",
    "trainforge.local.file_store",
    "trainforge.aws.s3_store",
    "trainforge.custom.request",
    "trainforge.custom.model_format",
]
_CORE = {"errors", "contracts", "spec", "settings", "instances", "store", "catalog"}
#: layer -> the layers it may import. Everything below ``pipeline`` is a library of its own; ``pipeline``
#: composes them; ``cli`` and ``quickstart`` sit on top.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "contracts": set(),
    "settings": set(),
    "spec": {"errors", "contracts"},
    "instances": {"errors"},
    "store": {"errors", "aws", "local"},  # open_store dispatches on the URI scheme to the two adapters
    "catalog": {"errors", "store"},
    "public_data": {"errors"},
    # the plan reads the instance table, the request builders' serving engine and the contracts it returns
    "planning": {"spec", "contracts", "errors", "instances", "aws"},
    "aws": {"contracts", "errors", "instances", "settings", "store"},
    "local": {"contracts", "errors", "store", "planning"},
    # media: headers, decoding and the checks of the media records name (Pillow and soundfile imported lazily)
    "media": {"contracts", "errors", "store"},
    "data": {"contracts", "errors", "spec", "store", "media", "catalog"},
    "registry": {"contracts", "errors", "store"},
    "evaluation.gate": {"contracts", "spec"},
    "training": _CORE | {"data", "planning", "media"},
    "evaluation": _CORE | {"data", "training", "evaluation.gate", "media"},
    "serving": _CORE | {"aws", "local", "planning", "registry", "media"},
    # custom code: the framework containers' placement (aws), the local subprocess (local) and the report page
    # of its own evaluation (evaluation.html_report, no torch)
    "custom": _CORE | {"aws", "local", "evaluation"},
    # tuning: auto settings from the plan's packing estimate, trials as local training jobs measured on the
    # evaluation's probes, AMT requests
    "tuning": _CORE | {"planning", "training", "local", "evaluation"},
    "pipeline": _CORE
    | {"aws", "local", "data", "planning", "registry", "serving", "training", "evaluation.gate", "media", "custom"}
    | {"tuning"},
    "quickstart": {"public_data"},
    "cli": _CORE | {"data", "pipeline", "planning", "quickstart", "registry", "serving", "local"},
}
#: entry points that dispatch to another layer, by the contract that starts them (SageMaker runs
#: ``IMAGE serve`` through the same console script as ``IMAGE train``)
EXCEPTIONS = {
    ("trainforge.training.entrypoint", "serving"),
    # a tuning trial's container prints the tuner's objective line (its metric definitions' source)
    ("trainforge.training.entrypoint", "tuning"),
    # `trainforge convert-whisper` runs the CTranslate2 converter (imported when the command runs)
    ("trainforge.cli", "training"),
}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:3] == ["evaluation", "gate"]:
        return "evaluation.gate"
    return parts[1] if len(parts) > 1 else "trainforge"


def imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainforge."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "trainforge":
            found |= {f"trainforge.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("trainforge.")}
    return found


def violations(sources: dict[str, str]) -> list[str]:
    """``module -> source``: every import that crosses into a layer the module's layer may not use."""
    found = []
    for module, source in sorted(sources.items()):
        own = layer(module)
        for target in sorted(imports(source)):
            other = layer(target)
            if other != own and other not in ALLOWED[own] and (module, other) not in EXCEPTIONS:
                found.append(f"{module} imports {target} ({own} -> {other})")
    return found


def _library() -> dict[str, str]:
    return {
        ".".join(path.with_suffix("").relative_to(PACKAGE.parent).parts).removesuffix(".__init__"): path.read_text()
        for path in PACKAGE.rglob("*.py")
    }


def test_every_module_keeps_to_its_layer():
    sources = _library()
    assert {layer(module) for module in sources} - {"trainforge"} <= set(ALLOWED)
    assert violations(sources) == []


def test_a_forbidden_edge_is_caught():
    """The rule bites: the data layer reaching into training (a synthetic module, lazily importing)."""
    synthetic = {"trainforge.data.sneaky": "def f():\n    from trainforge.training import loop\n    return loop\n"}
    assert violations(synthetic) == [
        "trainforge.data.sneaky imports trainforge.training (data -> training)",
    ]


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_no_torch(module):
    code = f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; print(heavy)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"
