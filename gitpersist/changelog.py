"""The change log, ``.gitpersist/changes``: every record file a store writes,
one line each, so that every process's cache sees every acknowledged write
without the watcher.

The watcher is an accelerator, not the authority: its events can be lost
(a dead thread under eventlet, an inotify limit, a network file system that
sends none) and file signatures can repeat (coarse timestamps and reused
inodes).  The change log cannot be lost that way: a writer appends
``<revision> <relpath>`` (``-`` for a deletion, ``?`` for a revision it
does not know) after replacing the file and before its write returns, and a
reader checks the log's size (one ``stat``) before every read and applies
the lines that are new.  A line whose revision is what the cache holds costs
nothing more (a process's own writes); any other makes the next read of
that record go to the file, whatever its signature says.

Guarantees (tests: ``tests/test_changelog.py``, ``tests/test_coherence.py``):

* A read in any process on this host returns every write acknowledged by
  any process through a `Store` before the read began, in every watch mode
  (``"off"`` included), under eventlet and on file systems with coarse
  timestamps.  Changes made by other means (a hand edit, ``git pull``)
  reach the cache through the watcher, or through `Store.changed`.
* The log stays small: past `MAX_SIZE` bytes a writer replaces it with a
  new one holding only a header line (``# gitpersist changes <random
  id>``, also written when the log is first made): the id tells one log
  from the next, so a change-feed token (`gitpersist.changefeed`) never
  reads a new log as the old one.  A reader that sees a new file forgets
  its whole cache once; header lines are skipped.  Lines are appended with one ``write`` under the store's
  write lock, so they never interleave; a reader uses only whole lines.
* A writer killed between replacing a record file and appending its line
  leaves that change to the watcher (the write did not return).

Locking rule: `wrote` is called with the store's write lock held; `news`
with the cache's lock held.  The two sides keep their own descriptors.
"""

from __future__ import annotations

import errno
import os
import secrets

from .errors import StoreError
from .layout import CHANGES_FILE, is_store_file
from .records import RecordFiles

UNKNOWN = "?"
DELETED = "-"
HEADER = "# gitpersist changes "


def header() -> bytes:
    """The first line of a new log: what tells it from the logs before it."""
    return f"{HEADER}{secrets.token_hex(8)}\n".encode()


HEADER_SIZE = len(header())     # not counted against MAX_SIZE


class ChangeLog:
    """The change log of the store whose files are `files`."""

    MAX_SIZE = 4 << 20      # bytes: about 40,000 lines

    def __init__(self, files: RecordFiles) -> None:
        self._files = files
        self.path = files.path(CHANGES_FILE)
        self._in = -1               # reader's descriptor, and the file it reads
        self._in_id: tuple[int, int] | None = None
        self._offset = 0

    def open(self, *, create: bool = True) -> None:
        """Take note of where the log is (what came before is on disk
        already); a writable store's log is made now if missing, so that
        readers do not see it appear later (and forget everything).  Not
        with `create` false (a store opened read-only), nor where it cannot
        be (a read-only or full file system)."""
        try:
            if create:
                try:
                    fd = os.open(self.path, _CREATE | os.O_EXCL, self._files.file_mode)
                except FileExistsError:
                    os.close(self._append())
                else:
                    try:
                        os.write(fd, header())
                    finally:
                        os.close(fd)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC,
                                 errno.EDQUOT):
                raise StoreError(f"cannot open {self.path}: {exc.strerror or exc} (the "
                                 "store never follows a symlink)") from None
            # a read-only store: nothing will be written
        stat = self._stat()
        self._reopen(None if stat is None else _identity(stat), 0 if stat is None else stat.st_size)

    # -- writers (the store's write lock held) -----------------------------------

    def wrote(self, relpath: str, revision: str | None) -> None:
        """Record that the file at `relpath` now has `revision` (None:
        removed; `UNKNOWN`: not known)."""
        line = f"{revision or DELETED} {relpath}\n".encode("utf-8", "surrogateescape")
        fd = -1
        try:
            fd = self._append()
            size = os.fstat(fd).st_size
            if size + len(line) > self.MAX_SIZE + HEADER_SIZE:
                os.close(fd)
                fd = -1
                first = header()
                self._files.write(CHANGES_FILE, first)       # a new log
                fd, size = self._append(), len(first)
            # O_APPEND, one write: whole, never interleaved (we hold the
            # write lock).  A short one (a full disk) is taken back: its rest
            # would glue the next writer's line onto it.
            if os.write(fd, line) != len(line):
                os.ftruncate(fd, size)
                raise OSError(errno.ENOSPC, "the line was cut short")
        except OSError as exc:
            raise StoreError(f"cannot append to {self.path}: {exc.strerror or exc} (the "
                             f"change of {relpath} is on disk; other processes see it "
                             "through their watcher only)") from None
        finally:
            if fd >= 0:
                os.close(fd)

    def reported(self, relpath: str, revision: str | None) -> bool:
        """Record a change made by other means (a hand edit, ``git pull``)
        that a caller reported, unless the log's last line for `relpath`
        says `revision` already (another process reported it first, or a
        store wrote it); whether a line was added.  The write lock held."""
        try:
            with open(self.path, "rb") as file:
                data = file.read(self.MAX_SIZE + (64 << 10))
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        tail = (" " + relpath + "\n").encode("utf-8", "surrogateescape")
        end = data.rfind(tail)
        if end >= 0 and data[data.rfind(b"\n", 0, end) + 1:end].decode() == (revision or DELETED):
            return False
        self.wrote(relpath, revision)
        return True

    def close(self) -> None:
        """Release the descriptor (a later read opens it again)."""
        if self._in >= 0:
            os.close(self._in)
            self._in = -1

    def _append(self) -> int:
        """A descriptor appending to the log, made if missing.  Not kept
        open between writes: a file open for writing would keep its file
        system from being remounted read-only (about 5 us a write)."""
        return os.open(self.path, _CREATE, self._files.file_mode)

    # -- readers (the cache's lock held) -----------------------------------------

    def news(self) -> list[tuple[str, str | None]] | None:
        """(relpath, revision) of each line appended since the last call;
        None when anything may have changed (the log was replaced): forget
        everything."""
        stat = self._stat()
        identity = None if stat is None else _identity(stat)
        if identity != self._in_id or (stat is not None and stat.st_size < self._offset):
            self._reopen(identity, 0 if stat is None else stat.st_size)
            return None
        if stat is None or stat.st_size == self._offset:
            return []
        if self._in < 0:        # closed with the store: reads go on
            self._reopen(identity, self._offset)
        data = os.pread(self._in, stat.st_size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1         # whole lines only: the rest next time
        self._offset += end
        found = []
        for line in data[:end].decode("utf-8", "surrogateescape").splitlines():
            if line.startswith(HEADER):
                continue
            revision, _, relpath = line.partition(" ")
            if not (revision and is_store_file(relpath)):
                return None     # not a line of ours (a cut one glued to the next?): forget all
            found.append((relpath, None if revision == DELETED else revision))
        return found

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None

    def _reopen(self, identity: tuple[int, int] | None, offset: int) -> None:
        if self._in >= 0:
            os.close(self._in)
            self._in = -1
        self._in_id, self._offset = identity, offset
        if identity is not None:
            try:
                self._in = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                self._in_id = None
                return
            except OSError as exc:
                raise StoreError(f"cannot read {self.path}: {exc.strerror or exc} (the "
                                 "store never follows a symlink)") from None
            stat = os.fstat(self._in)
            if _identity(stat) != identity:     # replaced in between
                self._in_id, self._offset = _identity(stat), stat.st_size


_CREATE = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino
