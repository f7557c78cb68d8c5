"""The layer contract ([tool.importlinter] in pyproject.toml, run by `make lint`) and what it
cannot see: seglab imports inside functions (a way to hide a cycle or a climb up the layers)
and private names taken from another module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "seglab"

# Known, owned by branch refactor-a (issue 14, items 1-2), which removes them; add nothing here.
FUNCTION_LEVEL_ALLOWED: set[tuple[str, str]] = set()
PRIVATE_ALLOWED: set[tuple[str, str, str]] = set()


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(SRC.rglob("*.py"))
    ]


def _seglab_imports(node: ast.AST) -> list[tuple[str, list[str]]]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        is_seglab = node.module.split(".")[0] == "seglab"
        return [(node.module, [a.name for a in node.names])] if is_seglab else []
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if a.name.split(".")[0] == "seglab"]
    return []


def test_no_function_level_seglab_imports() -> None:
    found = set()
    for name, tree in _modules():
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(func):
                    found |= {(name, module) for module, _ in _seglab_imports(node)}
    assert found <= FUNCTION_LEVEL_ALLOWED, (
        f"seglab imports inside functions: {sorted(found - FUNCTION_LEVEL_ALLOWED)}; import at "
        "the top of the module, and if that makes a cycle, move the shared part down a layer"
    )


def test_no_private_names_across_modules() -> None:
    found = set()
    for name, tree in _modules():
        for node in ast.walk(tree):
            for module, names in _seglab_imports(node):
                found |= {(name, module, n) for n in names if n.startswith("_")}
    assert found <= PRIVATE_ALLOWED, (
        f"private names imported from another module: {sorted(found - PRIVATE_ALLOWED)}; make "
        "them public where they belong"
    )


def test_layer_contract() -> None:
    cli = pytest.importorskip("importlinter.cli", reason="import-linter: pip install -e '.[dev]'")
    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, (
        "the layer contract is broken: run `lint-imports` for the offending imports"
    )
