"""The architecture document and the package stay in step.

``docs/architecture.md`` lists every module with its role; a module added without a line
there fails here, so the map a new contributor reads first cannot go stale. Each package
also says, in its ``__init__`` docstring, what it may import (the contracts in
``pyproject.toml`` enforce it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "reconciler"
DOC = (REPO / "docs" / "architecture.md").read_text()
DOCUMENTED = set(re.findall(r"`([a-z_/]+\.(?:py|c))`", DOC))


def _modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        if "__pycache__" in path.parts or path.suffix not in (".py", ".c"):
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name in ("__main__.py", "__init__.py"):
            continue  # a package's docstring is checked below
        found.append(relative)
    return found


@pytest.mark.parametrize("module", _modules())
def test_every_module_is_in_the_architecture_document(module: str) -> None:
    assert module in DOCUMENTED, f"reconciler/{module} is missing from docs/architecture.md"


def test_the_document_names_no_module_that_does_not_exist() -> None:
    stale = {m for m in DOCUMENTED if "/" in m and not (PACKAGE / m).exists()}
    stale = {m for m in stale if not (REPO / m).exists()}
    assert not stale, f"docs/architecture.md names modules that are gone: {sorted(stale)}"


@pytest.mark.parametrize(
    "package",
    sorted(
        p.parent.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE and "__pycache__" not in p.parts
    ),
)
def test_every_package_says_what_it_is_and_what_it_may_import(package: str) -> None:
    source = (PACKAGE / package / "__init__.py").read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert len(docstring) > 80, f"reconciler/{package} has no docstring worth the name"
    if package != "cli":  # the top layer may import everything
        assert "May import" in docstring or "may import" in docstring, package


def test_no_module_is_over_500_lines() -> None:
    long = {
        p.relative_to(PACKAGE).as_posix(): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"split these modules: {long}"
