"""Dependency direction: app -> connectors, app -> policies; emulators stand alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import repo_root

FORBIDDEN = {
    "connectors": {"app", "emulators"},
    "policies": {"app", "connectors", "emulators", "fastapi", "sqlalchemy"},
    "emulators": {"app", "connectors", "policies"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_it_may(package):
    offenders = {
        str(path.relative_to(repo_root())): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (repo_root() / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
