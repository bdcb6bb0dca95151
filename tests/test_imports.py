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
    [contract] = config["tool"]["importlinter"]["contracts"]
    layered = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    ours = set()
    for path in modules():
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] != "__init__" and len(parts) == 2:     # subpackages are layers whole
            ours.add(".".join(parts))
        elif len(parts) == 3 and parts[-1] == "__init__":
            ours.add(".".join(parts[:2]))
    assert ours - layered == set()
