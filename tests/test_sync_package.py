"""The sync package's shape: its modules are the ones its docstring maps
(their imports: the layers contracts in pyproject.toml, tests/test_imports.py)."""

from __future__ import annotations

import ast
import pathlib

import gitpersist

SYNC = pathlib.Path(gitpersist.__file__).parent / "sync"
ORDER = ["syncer", "remote", "integrate", "received", "fieldmerge", "journal", "ledger", "merge",
         "plumbing", "port", "report"]
ABOVE = {"store", "cli", "plugin", "cinder", "fsck", "transfer", "update", "settle", "locate"}


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
