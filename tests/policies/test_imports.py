"""The engine stays pure: no service, connector, web or database imports under policies/."""

from __future__ import annotations

import ast
from pathlib import Path

import policies

FORBIDDEN = {"app", "connectors", "emulators", "fastapi", "starlette", "sqlalchemy", "httpx"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


class TestPolicyImports:
    def test_no_forbidden_imports(self) -> None:
        package = Path(policies.__file__).parent
        offenders = {
            path.name: sorted(imported_roots(path) & FORBIDDEN)
            for path in sorted(package.glob("*.py"))
            if imported_roots(path) & FORBIDDEN
        }
        assert offenders == {}

    def test_public_api_is_exported(self) -> None:
        assert {"PolicyDocument", "evaluate", "rank", "guard", "preview", "diff_documents"} <= set(
            policies.__all__
        )
        assert all(hasattr(policies, name) for name in policies.__all__)
