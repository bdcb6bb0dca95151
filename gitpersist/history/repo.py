"""The git repository enclosing a store: which one, where, and who commits.

`Repository` opens the repository that encloses the store's folder (or runs
``git init`` there when there is none), refuses the layouts gitpersist does
not write (a bare repository, a store outside the work tree, sha256 objects,
reftable refs) and reads once what every other part of the git layer needs:
the work tree, the git folder (a linked worktree's own) and the common git
folder (objects and branches), the store's path below the work tree, the
commit identity and ``core.logAllRefUpdates``.

Author: the `author` option, else the repository's user.name/user.email,
else `DEFAULT_AUTHOR` (no identity needed).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import git

from .. import options
from ..errors import HistoryError, StoreError

DEFAULT_AUTHOR = "gitpersist <gitpersist@localhost>"
"""Author of the commits when none is given and git has no user.name/email."""


class Repository:
    """Facts of the repository enclosing the store at `root`.

    `repo` is the GitPython repository (kept for reading objects and
    revisions: `ObjectStore`); GitPython is not thread-safe, so its users
    serialise every use of it (History's ``_git_lock``).  Everything else is
    read once in the constructor and not changed afterwards: no lock."""

    def __init__(self, root: str, author: str | None = None, *, create: bool = True) -> None:
        explicit = None if author is None else options.parse_author("author", author)
        self.repo = open_repo(root, create=create)
        try:
            self._read_facts(root, explicit)
        except BaseException:
            self.repo.close()
            raise

    def _read_facts(self, root: str, explicit: tuple[str, str] | None) -> None:
        repo = self.repo
        if repo.bare or repo.working_tree_dir is None:
            raise HistoryError(f"{repo.git_dir} is a bare repository: a store needs a work tree")
        self.worktree = os.path.realpath(repo.working_tree_dir)
        rel = os.path.relpath(os.path.realpath(root), self.worktree)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise HistoryError(f"store {root} is outside the work tree {self.worktree}")
        self.prefix = "" if rel == os.curdir else rel.replace(os.sep, "/") + "/"
        self.git_dir = os.path.realpath(repo.git_dir)
        self.common_dir = os.path.realpath(repo.common_dir)
        self.objects_dir = os.path.join(self.common_dir, "objects")
        with repo.config_reader() as config:
            def value(section: str, option: str, default: str | bool) -> object:
                try:
                    return config.get_value(section, option, default)
                except Exception:   # configparser errors on odd values
                    return default
            fmt = str(value("extensions", "objectformat", "sha1")).lower()
            refs = str(value("extensions", "refstorage", "files")).lower()
            if fmt != "sha1" or refs != "files":
                raise HistoryError(
                    f"{self.git_dir}: extensions.objectFormat={fmt}, refStorage={refs}: "
                    "gitpersist writes sha1 objects and files refs only")
            self.log_refs = str(value("core", "logallrefupdates", True)).lower() not in (
                "false", "0", "no", "off")
            if explicit is None:
                name, email = value("user", "name", ""), value("user", "email", "")
                default = options.parse_author("author", DEFAULT_AUTHOR)
                explicit = options.parse_author(
                    f"user.name/user.email in {self.git_dir}/config",
                    f"{name or default[0]} <{email or default[1]}>")
        self.author = Author(*explicit)

    def close(self) -> None:
        """End GitPython's ``git cat-file`` processes."""
        self.repo.close()


@dataclass(frozen=True)
class Author:
    """Who commits: "Name <email>".  Not GitPython's Actor: its ``==``
    fails on other types, and eventlet's monkey_patch compares every value
    of every dict holding a lock with that lock (it crashed, issue 12)."""
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def open_repo(root: str, *, create: bool = True) -> git.Repo:
    """The repository enclosing `root`, or (with `create`) a new one at `root`."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        if not create:
            raise HistoryError(f"no git repository holds the store {root} (a store opened "
                               "read-only does not make one)") from None
    except git.NoSuchPathError:
        raise StoreError(f"store folder {root} is missing") from None
    try:
        return git.Repo.init(root)
    except git.GitCommandError as exc:
        raise HistoryError(f"git init {root} failed: {(exc.stderr or '').strip()}") from None


def signature(author: Author, when: int | None = None) -> str:
    """``Name <email> <seconds> <+hhmm>`` as commits and reflogs write it,
    in the local time zone."""
    now = int(time.time()) if when is None else when
    offset = time.localtime(now).tm_gmtoff // 60
    tz = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    return f"{author.name} <{author.email}> {now} {tz}"


def identity_env(author: Author) -> dict[str, str]:
    """The environment that makes a git command commit as `author`."""
    return {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", author.name or ""), ("EMAIL", author.email or ""))}
