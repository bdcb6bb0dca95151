"""The change feed: what changed in a store since a token, read from the
change log (``.gitpersist/changes``, `gitpersist.changelog`).

    token = store.changes().token          # first, then list what you need
    ...
    batch = store.changes(since=token)     # every change since, in order
    for change in batch: ...               # type, id, operation, revision
    token = batch.token                    # resume from here

Every write the log records is a change here: a `Store`'s put and delete
in any process on this host, a sync's received records, and a change made
by other means once it is reported with `Store.changed` (a hand edit, a
``git pull``).  A token is ``<log id>.<offset>``: the id of the log file
(its header line; a log written before headers existed goes by its inode)
and the place after the last change handed out.  Each `Change` carries the
token that resumes right after it.

Guarantees (tests: ``tests/test_changefeed.py``):

* ``changes(since=t)`` returns exactly the changes logged after the point
  `t` names, in the order they were made (per record, and across records:
  the log is appended under the store's write lock), whichever process
  asks, and resumes from any token it handed out.
* A token the log no longer covers (the log was rotated past its size
  limit, or replaced) or one it never handed out raises `ChangesExpired`
  saying so: the caller lists again and follows from a new token, as with
  Kubernetes' 410 Gone.  A change is never skipped silently.
* Reading takes no lock and writes nothing: one open, one ``fstat`` and one
  read of what is new.

`Subscribers` is the in-process side (`Store.subscribe`): the cache tells
it each change it learns of, from the change log's lines (this process's
writes as they happen, the rest at the next read or write) and from the
watcher's record paths (the file is read again only while someone
subscribed).  Guarantees (tests: ``tests/test_changefeed.py::
test_a_subscriber_*``): every such change is called back once, in order
per record, a put told from a delete; a change seen by both the log and
the watcher, or a put that leaves the record's revision as it was, is
heard once; what came before the first subscriber is not heard
(``test_what_came_before_subscribing_is_not_heard``); a callback that
raises is logged and fails nothing (the others still hear).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from . import paths
from .changelog import DELETED, HEADER, UNKNOWN
from .errors import ChangesExpired, StoreError

LOG = logging.getLogger(__name__)

READ_LIMIT = 8 << 20        # bytes read at most per call (the log rotates at 4 MiB)


@dataclass(frozen=True)
class Change:
    """One change of a record.  `operation` is "put" or "delete";
    `revision` the record's revision after a put (None for a delete, or
    when the writer did not know it: a change reported by `Store.changed`
    of a file that is gone or unreadable); `token` resumes after it."""
    type: str
    id: str
    operation: str
    revision: str | None
    token: str


@dataclass(frozen=True)
class Changes:
    """The changes since a token, oldest first, and the token to resume
    from (after the last of them, or where the asking began)."""
    changes: list[Change]
    token: str

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)


@dataclass(frozen=True)
class Event:
    """A change a subscriber hears of (`Store.subscribe`): a `Change`
    without a token.  `operation` is "put" or "delete"; `revision` the
    record's revision after a put (None for a delete, or when it is not
    known: a file that did not parse)."""
    type: str
    id: str
    operation: str
    revision: str | None


class Held(Protocol):
    """A record as the cache holds it (`gitpersist.reader.Entry`)."""
    relpath: str
    revision: str


class Holding(Protocol):
    """The records of a type the cache holds (`gitpersist.typecache.TypeCache`)."""
    @property
    def entries(self) -> Mapping[str, Held]: ...


class Subscribers:
    """The callbacks of `Store.subscribe`, and what each record was last
    told as (its revision, None once deleted), so that one change reported
    twice (by the change log and by the watcher, or a write's own line read
    back) is heard once.  The cache calls `tell` with its lock held; it
    keeps this state only once someone subscribed."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Event], None]] = []
        self._told: dict[str, str | None] = {}      # relpath -> revision, None: deleted

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def add(self, callback: Callable[[Event], None], settle: Callable[[], None],
            caches: Iterable[Holding]) -> None:
        """Call `callback` from now on.  The first one settles the cache
        first (what came before is not heard) and takes note of the records
        `caches` hold (a late watcher event of one is no change)."""
        if not self.callbacks:
            settle()
            for cache in caches:
                self._told.update((entry.relpath, entry.revision)
                                  for entry in cache.entries.values())
        self.callbacks.append(callback)

    def settle(self, apply: Callable[[], None]) -> None:
        """Before this process's own change: `apply` what came before it, so
        that it is heard first (only if someone subscribed: a stat and a read
        of the log)."""
        if self.callbacks:
            apply()

    def seen(self, relpath: str, revision_of: Callable[[str], str | None]) -> None:
        """The watcher saw the file at `relpath` change: `tell` what it
        holds now (read only if someone subscribed)."""
        if self.callbacks and paths.split_record_path(relpath) is not None:
            self.tell(relpath, revision_of(relpath))

    def tell(self, relpath: str, revision: str | None) -> None:
        """The record file at `relpath` has `revision` now (None: removed;
        `UNKNOWN`: a put whose revision is not known); calls back unless
        that is what the record was last told as."""
        split = paths.split_record_path(relpath)
        if not self.callbacks or split is None:
            return
        if revision != UNKNOWN and self._told.get(relpath, UNKNOWN) == revision:
            return
        self._told[relpath] = revision
        event = Event(split[0], split[1], "delete" if revision is None else "put",
                      None if revision == UNKNOWN else revision)
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:       # one subscriber's bug must not fail the read
                LOG.exception("subscriber %r failed on %s", callback, event)


class ChangeFeed:
    """The change feed over the change log at `path` (see the module
    docstring).  Holds no state between calls: every call reads the log."""

    def __init__(self, path: str) -> None:
        self.path = path

    def since(self, token: str | None = None) -> Changes:
        """The changes after `token`; with None, none: the token of now."""
        return self._read(token, start=False)

    def first(self) -> str:
        """The token of the current log's beginning: where a follower whose
        token expired takes up again (the changes lost in between are not
        there: it says so, and whoever needs them lists again)."""
        return self._read(None, start=True).token

    def _read(self, token: str | None, start: bool) -> Changes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError(f"no change log at {self.path}: a store made it at its "
                             "first open; open the store writable once") from None
        except OSError as exc:
            raise StoreError(f"cannot read the change log {self.path}: "
                             f"{exc.strerror or exc}") from None
        try:
            stat = os.fstat(fd)
            log_id = _log_id(fd, stat)
            if token is None:
                return Changes([], _token(log_id, 0 if start else _line_start(fd, stat.st_size)))
            offset = self._offset(fd, token, log_id, stat.st_size)
            data = os.pread(fd, min(stat.st_size - offset, READ_LIMIT), offset)
        finally:
            os.close(fd)
        found = []
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break                           # being written: the next call
            offset += len(line)
            change = _parse(line.decode("utf-8", "surrogateescape").rstrip("\n"),
                            _token(log_id, offset))
            if change is not None:
                found.append(change)
        return Changes(found, _token(log_id, offset))

    def _offset(self, fd: int, token: str, log_id: str, size: int) -> int:
        wanted, dot, place = token.rpartition(".")
        if not (dot and wanted and place.isascii() and place.isdigit()):   # not "²"
            raise ChangesExpired(f"{token!r} is not a change-feed token of {self.path}; "
                                 "list again and follow from store.changes().token")
        offset = int(place)
        if wanted != log_id or offset > size:
            raise ChangesExpired(
                f"change-feed token {token!r} has expired: the change log {self.path} was "
                "rotated or replaced since, and the changes in between are gone; list "
                "again and follow from store.changes().token")
        if offset and os.pread(fd, 1, offset - 1) != b"\n":
            raise ChangesExpired(f"change-feed token {token!r} was never handed out by "
                                 f"{self.path} (not at a change); list again and follow "
                                 "from store.changes().token")
        return offset


def _parse(line: str, token: str) -> Change | None:
    """The change a log line records; None for a header or a line of the
    store's own files (the format file)."""
    if line.startswith(HEADER):
        return None
    revision, _, relpath = line.partition(" ")
    split = paths.split_record_path(relpath)
    if split is None:
        return None
    if revision == DELETED:
        return Change(split[0], split[1], "delete", None, token)
    return Change(split[0], split[1], "put", None if revision == UNKNOWN else revision, token)


def _log_id(fd: int, stat: os.stat_result) -> str:
    """The id in the log's header; a log without one goes by its inode."""
    first = os.pread(fd, 64, 0).split(b"\n", 1)[0].decode("ascii", "replace")
    if first.startswith(HEADER) and first[len(HEADER):].isalnum():
        return first[len(HEADER):]
    return f"i{stat.st_dev:x}-{stat.st_ino:x}"


def _line_start(fd: int, size: int) -> int:
    """The end of the last whole line before `size`."""
    tail = os.pread(fd, min(size, 4096), max(0, size - 4096))
    return max(0, size - 4096) + tail.rfind(b"\n") + 1 if b"\n" in tail else max(0, size - 4096)


def _token(log_id: str, offset: int) -> str:
    return f"{log_id}.{offset}"
