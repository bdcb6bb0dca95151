"""Finding a store on disk, and the git repository that keeps its history.

Guarantees:

* Nothing here creates or changes a file: these functions only look.
* `is_store` is true exactly when the folder holds a format file, the file
  every `Store` writes when it first opens a folder; `find_store` finds the
  store a folder is in, from any folder inside it (tests:
  ``tests/test_cli_ops.py``).
* `uses_git` decides whether a store keeps git history, without being told:
  yes when its root is the top of a git work tree (``<root>/.git`` exists),
  or when its format file is tracked by the git repository around it (a
  store opened with ``git=True`` commits it first).  A store that merely
  sits inside some unrelated repository, untracked or ignored, does not.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .layout import FORMAT_FILE

if TYPE_CHECKING:
    import git


def is_store(root: str | os.PathLike[str]) -> bool:
    """True if `root` holds a gitpersist store (its format file exists)."""
    return os.path.isfile(os.path.join(os.fspath(root), *FORMAT_FILE.split("/")))


def find_store(start: str | os.PathLike[str]) -> str | None:
    """The store holding the folder `start`: `start` itself or the nearest
    folder above it that `is_store`, as git finds a repository from any
    folder inside its work tree; None if there is none."""
    folder = os.path.abspath(os.fspath(start))
    while True:
        if is_store(folder):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def find_repo(root: str | os.PathLike[str]) -> git.Repo | None:
    """The non-bare git repository whose work tree holds `root`, or None."""
    import git     # GitPython loads only when needed
    try:
        repo = git.Repo(os.fspath(root), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if repo.bare or repo.working_tree_dir is None:
        repo.close()
        return None
    return repo


def uses_git(root: str | os.PathLike[str]) -> bool:
    """True if the store at `root` keeps its history in git (see module doc)."""
    root = os.path.realpath(os.fspath(root))
    if os.path.exists(os.path.join(root, ".git")):
        return True
    repo = find_repo(root)
    if repo is None:
        return False
    try:
        format_path = os.path.join(root, *FORMAT_FILE.split("/"))
        assert repo.working_tree_dir is not None        # find_repo: never bare
        relative = os.path.relpath(format_path, os.path.realpath(repo.working_tree_dir))
        return bool(repo.git.ls_files("--", relative))
    finally:
        repo.close()
