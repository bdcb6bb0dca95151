"""The layers hold: imports only downward, no reach into another module's
private names, no class that holds everything."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gitpersist"
ROOT = PACKAGE.parent


def modules() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_go_only_downward():
    """The layers contract in pyproject.toml ([tool.importlinter])."""
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install gitpersist[test])")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_no_module_uses_another_modules_private_names():
    found = []
    for path in modules():
        tree = ast.parse(path.read_text(), str(path))
        imported = set()        # names bound to modules of ours
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                     .startswith("gitpersist")):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.name}: from {node.module} import {alias.name}")
                    imported.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert found == []


def test_every_module_is_in_a_layer():
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]      # the whole package
    layered = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    ours = set()
    for path in modules():
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] != "__init__" and len(parts) == 2:     # subpackages are layers whole
            ours.add(".".join(parts))
        elif len(parts) == 3 and parts[-1] == "__init__":
            ours.add(".".join(parts[:2]))
    assert ours - layered == set()


def code_lines(node: ast.AST, lines: list[str]) -> int:
    """Lines of code in `node`: not blank, not a comment, not a docstring."""
    docs = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and inner.body and isinstance(inner.body[0], ast.Expr) \
                and isinstance(inner.body[0].value, ast.Constant) \
                and isinstance(inner.body[0].value.value, str):
            docs.update(range(inner.body[0].lineno, inner.body[0].end_lineno + 1))
    return sum(1 for number in range(node.lineno, node.end_lineno + 1)
               if number not in docs and lines[number - 1].strip()
               and not lines[number - 1].strip().startswith("#"))



def test_no_class_holds_everything():
    """A class past 250 lines of code (docstrings and comments not counted)
    holds more than one concern: split it."""
    big = []
    for path in modules():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                size = code_lines(node, source.splitlines())
                if size > 250:
                    big.append(f"{path.relative_to(ROOT)}: {node.name} ({size} lines)")
    assert big == []
