"""Refs of a files-backend repository: read them, and move one by
compare-and-swap.

Guarantees:

* **Safe next to other git users.**  `Refs.set_if_equals` moves a ref under
  git's own ``<ref>.lock`` protocol (create the lock file exclusively, check
  the current value, write, append to the reflog, rename), so a ``git
  commit`` run by hand in between is never overwritten: the swap refuses
  and the caller builds again on top of it.  Loose refs, packed refs, a
  detached HEAD, linked worktrees (HEAD in the worktree's git folder,
  branches in the common one) and an unborn branch (a fresh repository)
  are handled; each move appends a reflog entry like git's, to the ref's
  log and to HEAD's when HEAD points to the ref.
* **The ref never reaches an object that is not on disk**: callers write
  their objects first (`objects`); the new value is written to the lock
  file (fsynced), renamed over the ref, and the folder fsynced.
* **A crashed writer's lock does not block forever.**  A ``<ref>.lock``
  left by a process killed while moving the branch is removed once it is
  `stale_lock_age` seconds old (git holds one for milliseconds), so the
  next writer waits that long, then moves the ref.

Refs are moved here rather than with GitPython: its SymbolicReference
writes through a lock file but never checks the old value, so a commit
made by another git process in between would be silently dropped.  Nor
with ``git update-ref``: a process start per move.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Protocol


from .. import files
from ..errors import HistoryError
from .objects import HEX_ID, NULL_ID
from .repo import Author, signature

LOG = logging.getLogger(__name__)

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class RefTunables(Protocol):
    """What `Refs` reads, live, of its owner (a History)."""
    fsync: bool
    git_lock_timeout: float     # seconds to wait for a ref lock held by another process
    stale_lock_age: float       # a ref lock this old (mtime) was left by a crash


class Refs:
    """The refs of the repository whose git folder is `git_dir` (HEAD:
    a linked worktree's own) and common folder `common_dir` (branches,
    packed-refs, branch reflogs).  Reflog entries name `author`; they are
    written when `log_refs` (``core.logAllRefUpdates``), for HEAD and
    branches.

    Lock rules: no lock of its own, and none needed: reads are single file
    reads, and `set_if_equals` excludes every other writer, in this process
    or another, git included, by the ref's lock file."""

    def __init__(self, git_dir: str, common_dir: str, *, author: Author, log_refs: bool,
                 tunables: RefTunables) -> None:
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.author = author
        self.log_refs = log_refs
        self.tunables = tunables

    def head_ref(self) -> str:
        """The ref HEAD points to ("refs/heads/main"), or "HEAD" if detached."""
        path = os.path.join(self.git_dir, "HEAD")
        try:
            with open(path, "rb") as file:
                data = file.read().strip()
        except OSError as exc:
            raise HistoryError(f"cannot read {path}: {exc.strerror}") from None
        if not data.startswith(b"ref:"):
            return "HEAD"
        ref = data[4:].strip().decode("utf-8", "replace")
        if not ref.startswith("refs/") or ".." in ref.split("/") or ref.endswith(".lock"):
            raise HistoryError(f"{path}: unsupported HEAD target {ref!r}")
        return ref

    def path(self, ref: str) -> str:
        """The loose file of `ref`."""
        return os.path.join(self.git_dir if ref == "HEAD" else self.common_dir, *ref.split("/"))

    def read_ref(self, ref: str) -> str | None:
        """The commit id `ref` holds (loose, else packed), or None."""
        path = self.path(ref)
        try:
            with open(path, "rb") as file:
                data = file.read().strip()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise HistoryError(f"cannot read ref {path}: {exc.strerror}") from None
        if data is not None:
            if not HEX_ID.fullmatch(data):
                raise HistoryError(f"ref {path}: not a commit id ({data[:60]!r})")
            return data.decode()
        if ref == "HEAD":
            return None
        try:
            with open(os.path.join(self.common_dir, "packed-refs"), "rb") as file:
                target = b" " + ref.encode() + b"\n"
                for line in file:
                    if line.endswith(target) and HEX_ID.fullmatch(line[:40]):
                        return line[:40].decode()
        except FileNotFoundError:
            pass
        return None

    def set_if_equals(self, ref: str, old: str | None, new: str, message: str, *,
                      head: bool = False) -> bool:
        """Point `ref` at `new` if it still holds `old` (None: `ref` does not
        exist yet), and, with `head`, if HEAD still points to `ref`; False if
        not.  `message` is the reflog entry.  Raises `HistoryError` if
        another process holds the ref's lock longer than `git_lock_timeout`
        seconds without it being stale."""
        path = self.path(ref)
        lock = path + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = self.take_lock(lock)
        done = False
        try:
            head_ref = self.head_ref()
            if (head and head_ref != ref) or self.read_ref(ref) != old:
                return False
            files.write_all(fd, new.encode() + b"\n")
            if self.tunables.fsync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            self.append_reflog(ref, old, new, message)
            if ref != "HEAD" and head_ref == ref:
                self.append_reflog("HEAD", old, new, message)
            os.replace(lock, path)
            done = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not done:
                files.unlink_quietly(lock)
        if self.tunables.fsync:
            files.fsync_dir(os.path.dirname(path))
        return True

    def take_lock(self, lock: str) -> int:
        """Create the lock file `lock` exclusively; its descriptor."""
        deadline = time.monotonic() + self.tunables.git_lock_timeout
        delay = 0.001
        while True:
            try:
                return os.open(lock, _CREATE, 0o666)
            except FileExistsError:
                if time.monotonic() > deadline:
                    # git holds a ref lock for milliseconds (and waits only
                    # 100 ms for another's): one this old was left by a
                    # process killed while committing, ours or git's.
                    if self.remove_stale_lock(lock):
                        continue
                    raise HistoryError(
                        f"{lock} exists: another git process is updating the branch; if "
                        "none is running, a crashed one left it: remove it") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def remove_stale_lock(self, lock: str) -> bool:
        """Remove `lock` if it is `stale_lock_age` seconds old; True if it is
        gone."""
        try:
            age = time.time() - os.stat(lock).st_mtime
        except FileNotFoundError:
            return True
        if age < self.tunables.stale_lock_age:
            return False
        LOG.warning("%s: removing a lock left %.0f s ago by a process that crashed "
                    "while committing", lock, age)
        files.unlink_quietly(lock)
        return True

    def append_reflog(self, ref: str, old: str | None, new: str, message: str) -> None:
        """Append git's reflog line for a move of `ref` from `old` to `new`
        (HEAD and branches, when `log_refs`).  Called with the ref's lock
        held."""
        if not (self.log_refs and (ref == "HEAD" or ref.startswith("refs/heads/"))):
            return
        path = os.path.join(self.git_dir if ref == "HEAD" else self.common_dir,
                            "logs", *ref.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        line = f"{old or NULL_ID} {new} {signature(self.author)}\t{message}\n"
        fd = os.open(path, _APPEND, 0o666)
        try:
            files.write_all(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
