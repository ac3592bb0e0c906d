"""A package states its public API in ``__all__``: every ``__init__.py`` that re-exports names from its own
modules, or defines public names itself, lists exactly those; a package that is only a namespace (a
docstring) has none. Imports an ``__init__`` needs for its own definitions (``typing.Protocol``) are not
re-exports."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

SOURCE = ROOT / "src"
PACKAGES = sorted(SOURCE.joinpath("trainforge").rglob("__init__.py"))


def export_problems(source: str, package: str) -> list[str]:
    """What is wrong with ``package``'s ``__all__``, given its ``__init__.py`` source: nothing when it is
    consistent."""
    declared: list[str] | None = None
    bound: set[str] = set()
    offered: set[str] = set()  # re-exports from the package's own modules, and its own definitions
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names = {alias.asname or alias.name for alias in node.names}
            bound |= names
            if node.level > 0 or (node.module or "").startswith(f"{package}."):
                offered |= names
        elif isinstance(node, ast.Import):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            offered.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in (target.id for target in targets if isinstance(target, ast.Name)):
                if name == "__all__":
                    declared = list(ast.literal_eval(node.value)) if node.value else []
                else:
                    bound.add(name)
                    offered.add(name)
    public = {name for name in offered if not name.startswith("_")}
    if declared is None:
        return [f"{package} exports {', '.join(sorted(public))} without __all__"] if public else []
    problems = [f"{package}.__all__ names {name}, which it does not define" for name in declared if name not in bound]
    problems += [f"{package} exports {name}, missing from __all__" for name in sorted(public - set(declared))]
    return problems


@pytest.mark.parametrize("init", PACKAGES, ids=lambda path: str(path.parent.relative_to(SOURCE)))
def test_each_package_declares_what_it_exports(init):
    package = ".".join(init.parent.relative_to(SOURCE).parts)
    assert export_problems(init.read_text(), package) == []


def test_some_package_re_exports():
    """The walk reads real packages: at least the ones known to state an API."""
    with_all = {init.parent.name for init in PACKAGES if "__all__" in init.read_text()}
    assert {"data", "planning", "registry"} <= with_all


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("from trainforge.x.core import Thing\n", "trainforge.x exports Thing without __all__"),
        ("from .core import Thing\n", "trainforge.x exports Thing without __all__"),
        ("class Thing:\n    pass\n", "trainforge.x exports Thing without __all__"),
        (
            "from trainforge.x.core import Thing\n__all__ = ('Thing', 'Other')\n",
            "trainforge.x.__all__ names Other, which it does not define",
        ),
        (
            "from trainforge.x.core import Thing, other\n__all__ = ('Thing',)\n",
            "trainforge.x exports other, missing from __all__",
        ),
    ],
)
def test_a_package_that_breaks_the_rule_is_named(source, problem):
    assert problem in export_problems(source, "trainforge.x")


def test_a_namespace_and_helper_imports_need_no_listing():
    assert export_problems('"""Only a docstring."""\n', "trainforge.x") == []
    helper = "from __future__ import annotations\nfrom typing import Protocol\nfrom trainforge.contracts import A\n"
    assert export_problems(helper, "trainforge.x") == []
