"""The store: one JSON file per record, a lock on every write, a watched cache.

Guarantees (each one has a test; see the README's Guarantees section):

* **Atomic, durable writes.**  `put` and `delete` return after the record
  file is replaced (or removed) atomically and, with ``fsync=True``, after
  the file and its folder are on disk.  A crash leaves the old or the new
  record, never a torn one.
* **One writer at a time.**  Writes take the store's lock file
  (``.gitpersist/write.lock``, filelock) and a thread lock, so writers in
  any number of threads and processes never lose each other's changes to
  different records.  A record's last writer wins, unless the writer passes
  ``expect=`` (a revision, or `ABSENT`): then a stale write raises
  `ConflictError` and changes nothing.
* **Read-your-writes, then everyone's.**  A process reads its own writes at
  once.  Changes made by other processes, ``git pull`` or a hand edit reach
  the cache through the watcher: with ``watch="native"`` (inotify, read at
  the start of every read: `gitpersist.inotify`), by the next read after
  the file was renamed or closed; with
  ``watch="polling"``, within `poll_interval` seconds; with ``watch="off"``
  the cache only follows this process (use it for single-process stores).
  A record not in the cache is read from disk.
* **Secret fields stay on this host.**  The top-level fields named by
  ``secret_fields`` (type -> field names; recorded in the format file for
  good) are kept in side files under ``.gitpersist/secrets/``, never in
  the record files that git commits and syncs; reads return the whole
  record (see `gitpersist.secret`).
* **Read-only opens.**  ``read_only=True`` (picked, with a warning, when
  the store folder is not writable) opens an existing store without the
  write lock, free space or a writable file system: reads, listings and
  history work; every write raises `ReadOnlyStore` naming the store; the
  recovery an open would do is left to the next writer.  A writable
  store's open does not wait for the write lock either: held by another
  writer (or not to be had, a full disk), its recovery is left to this
  process's first write (``tests/test_read_only.py``).
* **Bad records stay contained.**  A record file that does not parse raises
  `CorruptRecord` naming the file from `get`; `find` and `all` skip it with a
  warning, and the rest of the store keeps working.

How it is built (the README's module map shows the layers): `Store` is the
public API and the composition root.  It owns no storage logic; each
concern is a component below it, and a write reads top to bottom as calls
into them (see `put`):

==================  ==============================================
component           owns
==================  ==============================================
`options.Options`   every option, checked once
`records`           the store's files (read, write, remove, list)
`locking`           the write lock, and the lock order of the store
`formatfile`        the format file, the declaration, the key
`codec`             canonical bytes, the secret split, revisions
`sidefiles`         the side-file protocol of secret fields
`reader`            what is on disk now, read once
`cache`             entries, indexes, watcher paths; its own lock
`snapshot`          the cache's snapshot of each type (the cache's)
`watcher`           events from the file system
`recorder`          history, batches, commit listeners
`recordhistory`     the git history, opened and read by record
`inbound`           a sync's files; records split as declared
==================  ==============================================
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final

import orjson

from . import files, options, paths, query, secret
from .cache import Cache, CacheListener, IndexKey
from .changefeed import ChangeFeed, Changes, Event
from .changelog import UNKNOWN, ChangeLog
from .codec import Codec, Document, Prepared
from .declaration import Declaration
from .errors import ConflictError, CorruptRecord, StoreError
from .formatfile import FormatFile
from .inbound import Inbound
from .layout import FORMAT_FILE, Change
from .locking import WriteLock
from .messages import Describe, declared_secrets, describe_change
from .reader import Entry, OnDisk, Reader
from .recorder import BatchMessage, Recorder
from .recordhistory import RecordHistory
from .records import RecordFiles, open_store_folder, writable
from .sidefiles import SideFiles
from .watcher import Watching, open_watcher

if TYPE_CHECKING:
    from .history import History, Version
    from .sync import SyncReport, Syncer

LOG = logging.getLogger(__name__)

__all__ = ["ABSENT", "Absent", "Change", "Document", "Store", "describe_change"]


def _read_only_if_not_writable(opts: options.Options, root: str) -> options.Options:
    """`opts`, made read-only (with a warning) if the store folder at
    `root` is not writable."""
    if opts.read_only or writable(root):
        return opts
    LOG.warning("%s: the store folder is not writable: opened read-only, writes are "
                "refused", root)
    return dataclasses.replace(opts, read_only=True)


class Absent:
    """The type of `ABSENT` (``expect=ABSENT``: the record must not exist)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent()
"""Pass as ``expect=`` to write a record only if it does not exist yet."""


class Store:
    """A folder of JSON records, grouped in one folder per type.

    Use it as a context manager, or call `close()`: it stops the watcher and
    releases the git history's processes and files.

    Attributes: `root`, the store folder (absolute); `options`, every option
    as checked (`gitpersist.options.Options`).
    """

    def __init__(self, path: str | os.PathLike[str], *, git: bool = False,
                 fsync: bool = True,
                 indexes: Mapping[str, Mapping[str, IndexKey]] | None = None,
                 watch: str = "native", poll_interval: float = 1.0,
                 lock_timeout: float = 30.0,
                 file_mode: int | str = 0o600, dir_mode: int | str = 0o700,
                 secret_fields: Mapping[str, Iterable[str]] | None = None,
                 describe: Describe | None = None,
                 author: str | None = None,
                 commit_mode: str = "sync", commit_delay: float = 0.2,
                 remote: str | None = None, sync_every: float | None = None,
                 sync_on_open: bool = False, sync_after_commit: bool = False,
                 merge: str = "field", read_only: bool = False) -> None:
        """Open (or create) the store at `path`.

        `git`: commit every change (the folder becomes a repository, or the
        store lives in the one around it); `fsync`: a write returns once on
        disk; `watch`: "native", "polling" or "off", how changes made by
        other means reach the cache (`poll_interval` seconds for polling);
        `lock_timeout`: seconds to wait for the write lock; `file_mode`,
        `dir_mode`: permissions (int, or an octal string such as "0640");
        `author`: "Name <email>" of the commits; `commit_mode`: "sync" or
        "async" (the commit follows within `commit_delay` seconds);
        `remote`: a git remote to sync with, `sync_every` seconds,
        `sync_on_open`, `sync_after_commit`, and `merge`, the rule for a
        record both hosts changed: "field" (a three-way merge, field by
        field) or "record" (the later change wins as a whole record)
        (`gitpersist.sync`);
        `read_only`: open an existing store for reading only (picked
        with a warning when its folder is not writable).
        `gitpersist.options` checks each, naming it, before anything is
        made.  `indexes` declares equality
        indexes (type -> index name -> field name or function of the
        document), `secret_fields` the fields kept on this host (type ->
        field names, `gitpersist.secret`), `describe` the commit message of
        a change (`gitpersist.messages.describe_change`)."""
        opts = self.options = options.parse(dict(
            git=git, fsync=fsync, watch=watch, poll_interval=poll_interval,
            lock_timeout=lock_timeout, file_mode=file_mode, dir_mode=dir_mode, author=author,
            commit_mode=commit_mode, commit_delay=commit_delay, remote=remote,
            sync_every=sync_every, sync_on_open=sync_on_open,
            sync_after_commit=sync_after_commit, merge=merge, read_only=read_only))
        wanted = secret.check_fields(secret_fields, "secret_fields")
        self.root = os.path.abspath(os.fspath(path))
        opts = self.options = _read_only_if_not_writable(opts, self.root)
        self._describe = describe or describe_change
        self._closed = False
        self._syncer: Syncer | None = None
        self._watcher: Watching | None = None
        self._files = RecordFiles(self.root, fsync=opts.fsync, file_mode=opts.file_mode,
                                  dir_mode=opts.dir_mode)
        self._codec = Codec()
        self._sides = SideFiles(self._files, self._codec)
        self._reader = Reader(self._files, self._sides, self._codec)
        self._log = ChangeLog(self._files)
        self._feed = ChangeFeed(self._log.path)
        self._cache = Cache(self._files, self._reader, self._sides, self._log, indexes or {})
        self._cache.snapshots.writable = not opts.read_only    # local state: none saved
        open_store_folder(self.root, opts.dir_mode, create=not opts.read_only)
        self._lock = WriteLock(self.root, timeout=opts.lock_timeout, file_mode=opts.file_mode,
                               read_only=opts.read_only)
        self._recorder = Recorder(None)
        self._format = FormatFile(self._files, self._lock.exclusive,
                                  lambda relpath: self._log.wrote(relpath, UNKNOWN))
        self._declaration = Declaration(self._format, self._codec, self._sides,
                                        self._lock.exclusive)
        self._cache.declaration_changed = self._declaration.changed
        self._inbound = Inbound(self._files, self._sides, self._reader, self._log, self._codec,
                                self._declaration, self._recorder, self._lock.exclusive, self)
        self._past = RecordHistory(self, self._codec, self._describe)
        try:
            self._log.open(create=not opts.read_only)
            grown = self._declaration.open(wanted)
            if opts.watch != "off":
                watcher = self._watcher = open_watcher(
                    self.root, self._cache.changed, self._cache.lost, mode=opts.watch,
                    poll_interval=opts.poll_interval)
                self._cache.unwatched = lambda: not watcher.healthy
                self._cache.poll = watcher.drain
            # Split before recovery could commit the fields; both changes
            # are then committed as the declaration they are, not as a crash.
            title = declared_secrets(self._codec.fields, grown)
            explained = dict.fromkeys([FORMAT_FILE, *self._inbound.split(grown)], title)
            if opts.git:
                self._past.open(self._lock, self._recorder, self, explained if grown else {})
            if opts.syncing:    # a background syncer, and a sync on open if asked
                from .sync import Syncer
                assert opts.remote is not None
                self._syncer = Syncer(self, opts.remote, every=opts.sync_every,
                                      on_open=opts.sync_on_open,
                                      after_commit=opts.sync_after_commit)
                self._recorder.listeners.append(self._syncer.committed)
        except BaseException:   # release the lock file, the watcher, the history's thread
            self.close()
            raise

    # -- reading -------------------------------------------------------------

    def get(self, type: str, id: str) -> Document | None:
        """The record, or None.  Raises `CorruptRecord` for a broken file."""
        entry = self._cache.entry(type, id)
        return None if entry is None else orjson.loads(entry.data)

    def revision(self, type: str, id: str) -> str | None:
        """The record's current revision (for ``expect=``), or None.  For
        the revision of a record read with `get`, use ``revision_of(type,
        record)``: another process's write may land between two reads."""
        entry = self._cache.entry(type, id)
        return None if entry is None else entry.revision

    def get_with_revision(self, type: str, id: str) -> tuple[Document, str] | None:
        """The record and its revision, read together (None if absent): for
        caches built on records, which key what they build by revision."""
        entry = self._cache.entry(type, id)
        return None if entry is None else (orjson.loads(entry.data), entry.revision)

    def revisions(self, type: str, where: Mapping[str, Any] | None = None, /,
                  **filters: Any) -> list[tuple[str, str]]:
        """(id, revision) of each record `find` would return, in its order,
        without decoding any: for caches built on records (see `subscribe`)."""
        return [(entry.document["id"], entry.revision)
                for entry in self._cache.matching(type, query.conditions(where, filters))]

    def find(self, type: str, where: Mapping[str, Any] | None = None, /,
             **filters: Any) -> list[Document]:
        """Records meeting every filter, sorted by id: keyword `filters`
        are equal fields (or declared indexes); the mapping `where` also
        takes dotted paths into nested objects and operators after the
        name, ``{"size >=": 10, "meta.owner": "ops", "status in": [...]}``
        (`gitpersist.query`).  `type` and `where` are positional-only, so
        ``find("t", type="x")`` filters a field called ``type``.  Declared
        indexes answer ``=`` and ``in`` without scanning."""
        return [orjson.loads(data)
                for data in self._cache.find(type, query.conditions(where, filters))]

    def all(self, type: str) -> list[Document]:
        """Every record of `type`, sorted by id."""
        return self.find(type, None)

    def corrupt(self, type: str) -> list[CorruptRecord]:
        """The record files of `type` that `find` and `all` leave out (they
        do not parse, or hold an id that belongs elsewhere), sorted by file:
        how a caller tells that a listing is incomplete."""
        return self._cache.corrupt(type)

    def changed(self, relpath: str) -> None:
        """Tell the store that its file at `relpath` (below the root, with
        ``/``; a folder ends with ``/``) changed by other means: what the
        watcher does, and with ``watch="off"`` the way to let a change made
        by a ``git pull`` or another process reach this process's cache.
        A record file reported here goes to the change log too (once, with
        its revision now), so every process's cache and change feed
        (`changes`) see it; a folder does not (its files are not known)."""
        self._cache.changed(relpath.rstrip("/"), relpath.endswith("/"))
        if paths.split_record_path(relpath) is not None:
            with self._lock.exclusive():
                self._log.reported(relpath, self._reader.revision(relpath))

    def changes(self, since: str | None = None) -> Changes:
        """What changed in the store since the token `since`, in order, and
        the token to resume from (None: no changes, the token of now); an
        expired or unknown token raises `ChangesExpired`: list again.  See
        `gitpersist.changefeed`."""
        return self._feed.since(since)

    def subscribe(self, callback: Callable[[Event], None] | CacheListener) -> None:
        """Call `callback` in this process with an `Event` (type, id,
        operation "put" or "delete", revision) for every change the cache
        learns of from now on, whatever its source: this process's put and
        delete (as they happen), another process's and a sync's (at the
        next read or write here, from the change log, in every watch mode),
        a hand edit (when the watcher sees it or `changed` reports it).  In
        order per record; one change reported twice is heard once, as is a
        put that leaves a record as it was (same revision).  Not heard:
        hand edits the watcher missed (lost events, ``watch="off"``) and
        not reported, or a whole folder moved by hand.

        A `CacheListener` (``stored``, ``removed``, ``invalidated``) is told
        what the cache does instead, for caches built on records: its
        ``removed`` also means "dropped, changed elsewhere".  Both are
        called with the cache lock held: be quick, do not call back into the
        store (`gitpersist.changefeed.Subscribers`, `gitpersist.cache`).
        No thread calls either in between reads and writes, in any watch
        mode (`gitpersist.inotify`)."""
        self._cache.subscribe(callback)

    def types(self) -> list[str]:
        """The types that have a folder in the store (none if the store
        folder itself went missing)."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(entry.name for entry in entries
                      if entry.is_dir(follow_symlinks=False) and paths.is_type(entry.name))

    @property
    def secret_fields(self) -> dict[str, list[str]]:
        """The fields kept out of record files and git, by type: those of
        the option plus those the store's format file declares."""
        return secret.as_format(self._codec.fields)

    def revision_of(self, type: str, document: Mapping[str, Any]) -> str:
        """The revision `document` (a whole record, with its ``"id"``) has
        once stored: what `put` returns for it and `revision` reports."""
        return self._codec.revision_of(type, document)

    # -- writing -------------------------------------------------------------

    def put(self, type: str, id: str, document: Mapping[str, Any], *,
            expect: str | Absent | None = None, message: str | None = None) -> str:
        """Store `document` as record `id` of `type`; return its revision.

        The file holds the document plus its ``"id"``.  A document that has
        an ``"id"`` must agree with `id`.  With ``expect=``, the write only
        happens if the record's current revision is `expect` (or the record
        is absent, for `ABSENT`).
        """
        generation = self._codec.generation
        record = self._codec.prepare(type, id, document)
        with self._lock.exclusive():    # the commit (sync mode) after it: `Recorder.settle`
            if self._declaration.stale():   # declared by a way the change log missed
                self._cache.declared()
            self._cache.settle()        # another process's declaration, first
            if self._codec.generation != generation:
                record = self._codec.prepare(type, id, document)
            keys = self._cache.keys_of(type, record.document, f"{type} {id!r}")
            now = self._reader.for_write(record.relpath, expect is not None or self._recorder.active
                                         or bool(record.hidden))
            _check_expected(self._cache, type, id, expect, now)
            self._recorder.before_change(record.relpath, now.content if now else None)
            kept = (self._sides.stage(record, now.side, now.public_revision) if now
                    else self._sides.stage(record, None, None))
            stat = self._files.write(record.relpath, record.public_data)
            self._sides.settle(record, kept)
            self._cache.stored(Entry(record.relpath, record.document, record.data,
                                     record.revision, files.signature(stat),
                                     time.time_ns()), keys)
            self._log.wrote(record.relpath, record.revision)
            if self._watcher is not None:
                self._watcher.watch_type(type, resync=False)
            ticket = self._recorder.record(
                Change(record.relpath, record.public_data, record.public_revision),
                message or self._message(record, now), shared=self._lock.outermost,
                signature=files.signature(stat))
        self._recorder.settle(ticket)
        return record.revision

    def delete(self, type: str, id: str, *, expect: str | Absent | None = None,
               message: str | None = None) -> bool:
        """Remove the record; False if there was none."""
        relpath = paths.record_path(type, id)
        ticket = None
        with self._lock.exclusive():
            now = self._reader.for_write(relpath, expect is not None or self._recorder.active)
            _check_expected(self._cache, type, id, expect, now)
            self._recorder.before_change(relpath, now.content if now else None)
            removed = self._files.remove(relpath)
            self._sides.remove(relpath)         # after the record: never torn
            self._cache.removed(type, id, removed)
            if removed:
                self._log.wrote(relpath, None)
            if removed and self._recorder.active:
                if not message and not self._recorder.batching:
                    old = self._codec.public(type, now.document if now else None)
                    message = self._describe(type, id, old, None)
                ticket = self._recorder.record(Change(relpath, None, None), message or "",
                                               shared=self._lock.outermost)
        self._recorder.settle(ticket)
        return removed

    @contextmanager
    def batch(self, message: str | BatchMessage) -> Iterator[Store]:
        """Group writes: with git, everything written inside becomes one
        commit with `message` when the block ends.  The store stays locked
        for other writers meanwhile (readers go on).  Not a rollback unit:
        each write is durable as it happens, and on an exception the writes
        made so far are committed too, so history matches the files.  A
        callable `message` gets that exception (None if none) and returns
        the message: a batch cut short can say what it got done."""
        with self._lock.exclusive(), self._recorder.batch(message):
            yield self

    # -- history -------------------------------------------------------------

    @property
    def history(self) -> History | None:
        """The git history (None without ``git=True``)."""
        return self._past.history

    def versions(self, type: str, id: str, limit: int | None = None) -> list[Version]:
        """Commits that changed the record, newest first."""
        return self._past.versions(type, id, limit)

    def get_at(self, type: str, id: str, rev: str) -> Document | None:
        """The record as it was at git revision `rev` (None if absent)."""
        return self._past.get_at(type, id, rev)

    def diff(self, type: str, id: str, rev1: str, rev2: str | None = None) -> str:
        """Unified diff of the record between two revisions (`rev2`: now)."""
        return self._past.diff(type, id, rev1, rev2)

    def restore(self, type: str, id: str, rev: str) -> str | None:
        """Make the record what it was at `rev`: a new write, ``... (restored from REV)``."""
        return self._past.restore(type, id, rev)

    def flush(self) -> None:
        """Wait until every write so far is committed (asynchronous commits)."""
        self._past.flush()

    def sync(self) -> SyncReport:
        """Pull the remote's changes and push this store's: see
        `gitpersist.sync` for what it does and guarantees.  Needs
        ``remote=``; raises `SyncError` (a `HistoryError`) naming the remote."""
        if self._syncer is None:
            raise StoreError(f"store {self.root} has no remote to sync with "
                             "(open it with git=True, remote='origin')")
        return self._syncer.sync()

    # -- the port a sync works through (gitpersist.sync.StorePort) -----------

    def exclusive(self) -> AbstractContextManager[None]:
        """Exclude every other writer of the store, in this process and
        others, for the block (re-entrant); readers are not blocked."""
        return self._lock.exclusive()

    def apply_received(self, relpath: str, data: bytes | None) -> None:
        """Write (or, with None, remove) the store file at `relpath` as a
        sync received it, and tell the cache, as the watcher would (with
        ``watch="off"`` nothing else does).  Called inside `exclusive`."""
        self._inbound.received(relpath, data)

    def adopt_format(self) -> dict[str, list[str]]:
        """After a sync wrote another host's format file: keep the secret
        fields it declares from now on, and move those fields of the records
        already here to side files (as at open).  A declaration is never
        dropped: fields declared here and missing there are written back.
        Returns the fields newly declared, by type."""
        return self._inbound.adopt_format()

    # -- life cycle ----------------------------------------------------------

    def close(self) -> None:
        """Stop syncing, commit what is pending, save the cache's snapshot
        of the types changed (`gitpersist.snapshot`), stop the watcher,
        release git processes.  The order is this method's: the syncer's last sync
        needs the history; the history's last commit needs the write lock."""
        if self._closed:
            return
        self._closed = True
        if self._syncer is not None:
            self._syncer.close()
        self._past.close()
        self._cache.save_snapshots()
        self._lock.close()
        if self._watcher is not None:
            self._watcher.close()
        self._log.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gitpersist.Store {self.root}{' git' if self._past.history else ''}>"

    # -- internals -----------------------------------------------------------

    def _message(self, record: Prepared, now: OnDisk | None) -> str:
        """The commit message of a put: `describe` sees the records without
        their secret fields (it may quote values); none inside a batch,
        whose message is the commit's."""
        if not self._recorder.active or self._recorder.batching:
            return ""
        old = self._codec.public(record.type, now.document if now else None)
        return self._describe(record.type, record.id, old, record.public)


def _check_expected(cache: Cache, type: str, id: str, expect: str | Absent | None,
                    now: OnDisk | None) -> None:
    """Raise `ConflictError` unless the record on disk (`now`, read under
    the write lock) has the revision the caller expects."""
    if expect is None:
        return
    assert now is not None
    actual = now.entry.revision if now.entry else None
    wanted = None if expect is ABSENT else expect
    if actual != wanted:
        # The caller will read again to retry: let it see the file.
        cache.refreshed(type, id, now.entry)
        raise ConflictError(type, id, wanted, actual)   # type: ignore[arg-type]
