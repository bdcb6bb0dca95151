"""Group commit: sync-mode writers that write while a commit is being made
share the next commit, and its fsyncs.

A sync-mode write (``commit_mode="sync"``) writes its file under the
store's write lock, adds its change here (`GroupCommit.add`, a ticket),
releases the write lock and then waits for its ticket (`wait`).  The first
waiter that finds no commit under way leads: it takes the write lock again
and commits every change added so far in one commit; the others wait for
it.  While a commit is made (5 fsyncs: pack, index, pack folder, ref, ref
folder), the writers that wait for the write lock write their files and
join the next commit, so N concurrent writers cost about one commit per
round instead of N (``benchmarks/writes.py``: 4 threads against one).
A writer alone pays what it did before: one commit per write.

Guarantees (tests: ``tests/test_group.py``):

* **A sync-mode write returns after its commit.**  `wait` returns once a
  commit holding the change is made (by this writer or another), and
  raises `HistoryError` when that commit failed (the change is then queued
  for the background retry, as a failed commit always was).
* **History matches the files.**  A change is committed as its file is when
  the leader commits, under the write lock: its bytes as written, unless
  the file's signature (inode, mtime, size; a replace always makes a new
  inode while the old one is still linked) says that another process
  replaced or removed it meanwhile, or that the timestamp is too coarse
  to tell (`gitpersist.files.racy`); then the file is read and committed
  as it is now.  So an older version is never committed over a newer one.
* **Nothing is left behind.**  `drain` (the history's `flush` and `close`)
  commits what is still added.
* **Asynchronous commits take the bytes written too** (`Written`), under
  the same signature rule: a queued change is committed as written, or as
  its file is now if it was replaced since.

Lock rules: guarded by the history's condition `cond`; `wait` takes the
store's write lock (`lock`) holding nothing, then the condition inside it,
as the lock order in `gitpersist.history.history` says.  `add` and `holds`
are called with the write lock held.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from .. import files
from ..errors import GitpersistError, HistoryError
from ..layout import Change

Signature = tuple[int, int, int]        # inode, mtime, size: `gitpersist.files.signature`


@dataclass(frozen=True)
class Added:
    """A change added for the next commit: what was written, the signature
    of the file it left (None for a removal) and the message."""
    change: Change
    signature: Signature | None
    message: str


class GroupCommit:
    """The sync-mode changes written and not yet committed, and who leads.

    `commit(items)` is the history's: called with the write lock held, it
    commits the items as one commit and raises `HistoryError` if it
    cannot."""

    def __init__(self, cond: threading.Condition,
                 lock: Callable[[], AbstractContextManager[object]],
                 commit: Callable[[list[Added]], None]) -> None:
        self._cond = cond
        self._lock = lock
        self._commit = commit
        self.items: list[Added] = []
        self._added = 0             # tickets handed out
        self._settled = 0           # tickets whose commit was made (or failed)
        self._failed: dict[int, str] = {}   # ticket -> why its commit failed
        self._leading = False

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, change: Change, signature: Signature | None, message: str) -> int:
        """Add a change whose file is written (write lock held); its ticket."""
        with self._cond:
            self.items.append(Added(change, signature, message))
            self._added += 1
            return self._added

    def holds(self, relpath: str) -> bool:
        """Whether an added change names `relpath`."""
        with self._cond:
            return any(item.change.relpath == relpath for item in self.items)

    def wait(self, ticket: int) -> None:
        """Return once the change of `ticket` is committed (the write lock
        not held); lead the commit when no one else does."""
        while True:
            with self._cond:
                while self._settled < ticket and self._leading:
                    self._cond.wait()
                if self._settled >= ticket:
                    failed = self._failed.pop(ticket, None)
                    if failed is not None:
                        raise HistoryError(failed)
                    return
                self._leading = True
            try:
                with self._lock():
                    self.drain()
            except GitpersistError:
                with self._cond:
                    failed = self._failed.pop(ticket, None)
                    if failed is None and self._settled >= ticket:
                        continue    # the lock refused (closing), but close() committed it
                raise
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()

    def drain(self) -> None:
        """Commit every change added so far, in one commit (write lock held)."""
        with self._cond:
            items, first = list(self.items), self._settled + 1
        if not items:
            return
        try:
            self._commit(items)
        except HistoryError as exc:
            with self._cond:
                self._failed.update((first + n, str(exc)) for n in range(len(items)))
            raise
        finally:
            with self._cond:
                del self.items[:len(items)]
                self._settled += len(items)
                self._cond.notify_all()


Read = Callable[[str], bytes | None | Literal[False]]    # a store file now; False: unreadable


def as_committed(root: str, items: list[Added], read: Read) -> dict[str, bytes | None]:
    """relpath -> the content to commit for `items` (the write lock held):
    the last change of each path decides; its bytes as written while its
    file is `unchanged` (one ``lstat``: a write reads its file once, see
    ``tests/test_reader.py``), else ``read(relpath)``, the file as it is
    now (False: unreadable, left out)."""
    last = {item.change.relpath: item for item in items}
    return _contents(root, list(last), last, read)


def _contents(root: str, relpaths: list[str], written: dict[str, Added],
              read: Read) -> dict[str, bytes | None]:
    changes: dict[str, bytes | None] = {}
    for relpath in relpaths:
        item = written.get(relpath)
        data = item.change.data if item is not None and unchanged(root, item) else read(relpath)
        if data is not False:
            changes[relpath] = data
    return changes


class Written:
    """The last asynchronous write of each path queued and not committed
    yet, so that its commit takes the bytes written instead of reading the
    file again (the issue's profile: 11% of a batched write), under the
    same rule as `as_committed`.  Guarded by the store's write lock: every
    method is called with it held."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._items: dict[str, Added] = {}

    def add(self, change: Change, signature: Signature | None) -> None:
        self._items[change.relpath] = Added(change, signature, "")

    def changes(self, relpaths: list[str], read: Read) -> dict[str, bytes | None]:
        """relpath -> the content to commit for `relpaths` (each once)."""
        return _contents(self.root, list(dict.fromkeys(relpaths)), self._items, read)

    def forget(self, relpaths: list[str]) -> None:
        """Those paths are committed."""
        for relpath in relpaths:
            self._items.pop(relpath, None)


def unchanged(root: str, item: Added) -> bool:
    """Whether the file of `item` is still what its writer left: the same
    signature, not racy (`gitpersist.files.racy`: on a file system with
    coarse timestamps two writes in one tick can leave the same inode,
    mtime and size, so there only the content tells), or still absent
    after a removal."""
    path = os.path.join(root, *item.change.relpath.split("/"))
    try:
        now = files.signature(os.lstat(path))
    except FileNotFoundError:
        return item.signature is None
    return item.signature == now and not files.racy(now, time.time_ns())
