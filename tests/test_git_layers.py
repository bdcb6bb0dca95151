"""The git layer's import rules: the history package imports nothing above
it (store, sync, plugin, cli, fsck, transfer), its modules form no cycle,
and no module takes another's private names."""

from __future__ import annotations

import ast
import pathlib

import gitpersist

PACKAGE = pathlib.Path(gitpersist.__file__).parent
ALLOWED = {"errors", "layout", "files", "packfile", "paths", "options", "messages", "green"}


def imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken) of a gitpersist module, absolute."""
    parts = ["gitpersist", *path.relative_to(PACKAGE).with_suffix("").parts]
    package = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_the_history_package_imports_only_the_leaves_below_it():
    for path in sorted((PACKAGE / "history").glob("*.py")):
        for module, names in imports(path):
            if not module.startswith("gitpersist"):
                continue
            inner = module.split(".")[1:]
            if inner[:1] == ["history"]:
                continue
            taken = inner or names          # "from .. import files"
            assert set(taken) <= ALLOWED, f"{path.name} imports {module} {names}"


def test_the_history_modules_form_no_cycle():
    graph = {path.stem: {module.split(".")[2] for module, _ in imports(path)
                         if module.startswith("gitpersist.history.")}
             for path in (PACKAGE / "history").glob("*.py")}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        if name in done:
            return
        for other in graph.get(name, ()):
            visit(other, (*trail, name))
        done.add(name)
    for name in graph:
        visit(name, ())


def test_no_private_names_cross_the_git_layer():
    for path in [*(PACKAGE / "history").glob("*.py"), *(PACKAGE / "sync").glob("*.py")]:
        for module, names in imports(path):
            if module.startswith("gitpersist"):
                private = [n for n in names if n.startswith("_") and n != "__future__"]
                assert not private, f"{path.name} takes {private} from {module}"
