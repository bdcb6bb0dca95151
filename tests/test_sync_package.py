"""The sync package's shape: its modules import only downward within it
(no cycle), nothing above it (the store, the applications), no private
names of another module, and no class holds everything."""

from __future__ import annotations

import ast
import pathlib

import gitpersist

SYNC = pathlib.Path(gitpersist.__file__).parent / "sync"
ORDER = ["syncer", "remote", "integrate", "journal", "merge", "plumbing", "port", "report"]
ABOVE = {"store", "cli", "plugin", "cinder", "fsck", "transfer", "update", "locate"}


def imported(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(absolute module, names) of every import in `path`, TYPE_CHECKING too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ["gitpersist", "sync"][:3 - node.level] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_the_modules_are_the_documented_ones():
    assert {p.stem for p in SYNC.glob("*.py")} - {"__init__"} == set(ORDER)
    doc = (SYNC / "__init__.py").read_text()
    assert [name for name in ORDER if f"`{name}`  " in doc] == ORDER


def test_each_module_imports_only_modules_below_it_and_nothing_above_the_package():
    for path in SYNC.glob("*.py"):
        for module, names in imported(path):
            parts = module.split(".")
            if parts[0] != "gitpersist":
                continue
            assert parts[1:2] == [] or parts[1] not in ABOVE, f"{path.name} imports {module}"
            assert not (parts[1:2] == [] and set(names) & ABOVE), f"{path.name}: {names}"
            if path.stem != "__init__" and parts[1:2] == ["sync"] and len(parts) > 2:
                assert ORDER.index(parts[2]) > ORDER.index(path.stem), \
                    f"{path.name} imports {module}, which is not below it"


def test_no_class_over_300_lines():
    for path in SYNC.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno < 300, f"{path.name}: {node.name}"
