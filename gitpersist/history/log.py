"""Reading a store's history: the versions of a record, its content at a
revision, the diff between two.

`Log` only reads: it never writes an object, a ref or the index, so it
needs no store lock.  What the writing side has queued is committed first
(`settle`, given by `gitpersist.history.history`), so a query sees every
change recorded before it.

Locking rule: every use of GitPython and of the object store is under
`git_lock` (the history's; see the lock order in
`gitpersist.history.history`).  Tests: ``tests/test_history.py``.
"""

from __future__ import annotations

import datetime
import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from .objects import TREE_MODE, ObjectStore
from .refs import Refs
from .runner import GitRunner


@dataclass(frozen=True)
class Version:
    """One commit that changed a record."""
    #: hex id
    commit: str
    #: author time, timezone-aware
    time: datetime.datetime
    #: "Name <email>"
    author: str
    message: str


class Log:
    """The history of the store files below `prefix` in the repository."""

    def __init__(self, *, runner: GitRunner, objects: ObjectStore, refs: Refs, prefix: str,
                 git_lock: threading.RLock, settle: Callable[[], None],
                 read_file: Callable[[str], bytes | None | Literal[False]]) -> None:
        self._runner = runner
        self._objects = objects
        self._refs = refs
        self._prefix = prefix
        self._git_lock = git_lock
        self._settle = settle
        self._read_file = read_file

    def versions(self, relpath: str, limit: int | None = None) -> list[Version]:
        """The commits that changed `relpath`, newest first."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ConfigError(f"limit={limit!r}: a number of versions, 0 or more")
        self._settle()
        with self._git_lock:
            if limit == 0 or self._refs.read_ref(self._refs.head_ref()) is None:
                return []
            args = ["log", "-z", "--format=%H%x00%aI%x00%an <%ae>%x00%B", "--no-show-signature"]
            if limit is not None:
                args.append(f"--max-count={limit}")
            out = self._runner.text([*args, "HEAD", "--", f":(literal){self._prefix}{relpath}"])
        fields = out.split("\0") if out else []
        return [Version(fields[i], datetime.datetime.fromisoformat(fields[i + 1]),
                        fields[i + 2], fields[i + 3].strip())
                for i in range(0, len(fields) - 3, 4)]

    def read(self, relpath: str, rev: str) -> bytes | None:
        """The content of `relpath` at revision `rev`; None if absent there."""
        self._settle()
        with self._git_lock:
            objects = self._objects
            entry = objects.lookup(objects.commit_tree(objects.resolve(rev)),
                                   self._prefix + relpath)
            if entry is None or entry[0] == TREE_MODE:
                return None
            return objects.read(entry[1], "blob")

    def diff(self, relpath: str, rev1: str, rev2: str | None = None) -> str:
        """Unified diff of `relpath` from `rev1` to `rev2` (None: the file as
        it is now); empty when they are equal."""
        old = self.read(relpath, rev1)
        if rev2 is None:
            new = self._read_file(relpath)
            new = None if new is False else new
        else:
            new = self.read(relpath, rev2)
        return "".join(difflib.unified_diff(
            _lines(old), _lines(new), f"a/{relpath}", f"b/{relpath}",
            rev1, rev2 or "working file"))


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(keepends=True)
