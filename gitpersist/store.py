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
  the cache through the watcher: with ``watch="native"`` (inotify), within
  milliseconds of the file being renamed or closed; with
  ``watch="polling"``, within `poll_interval` seconds; with ``watch="off"``
  the cache only follows this process (use it for single-process stores).
  A record not in the cache is read from disk.
* **Secret fields stay on this host.**  The top-level fields named by
  ``secret_fields`` (type -> field names; recorded in the format file for
  good) are kept in side files under ``.gitpersist/secrets/``, never in
  the record files that git commits and syncs; reads return the whole
  record (see `gitpersist.secret`).
* **Bad records stay contained.**  A record file that does not parse raises
  `CorruptRecord` naming the file from `get`; `find` and `all` skip it with a
  warning, and the rest of the store keeps working.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Final

import filelock
import orjson

from . import encoding, files, formatfile, options, paths, secret
from .errors import (ConfigError, ConflictError, CorruptRecord,
                     InvalidDocument, LockTimeout, StoreError)
from .messages import Describe, describe_change
from .layout import (FORMAT_FILE, GITIGNORE_FILE, KEY_FILE, LOCK_FILE,
                     META_DIR, META_GITIGNORE, SECRETS_DIR, Change, side_path)
from .watcher import Watcher

LOG = logging.getLogger(__name__)

Document = dict[str, Any]
IndexKey = str | Callable[[Document], Any] | None


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""Pass as ``expect=`` to write a record only if it does not exist yet."""


@dataclass
class _Entry:
    relpath: str
    document: Document
    data: bytes
    revision: str
    signature: tuple[int, int, int]
    keys: tuple[tuple[str, Any], ...] = ()      # (index name, key) it is filed under


class _TypeCache:
    """Cached records of one type, plus equality indexes once complete."""

    def __init__(self, index_keys: Mapping[str, Callable[[Document], Any]]) -> None:
        self.entries: dict[str, _Entry] = {}
        self.id_of_path: dict[str, str] = {}
        self.corrupt: dict[str, CorruptRecord] = {}     # by relpath
        self.complete = False
        self.index_keys = index_keys
        self.indexes: dict[str, dict[Any, set[str]]] = {name: {} for name in index_keys}

    def keys_of(self, document: Document, where: str) -> tuple[tuple[str, Any], ...]:
        """(index name, the document's key) for each index; `InvalidDocument`
        names the index whose key function fails on it."""
        keys = []
        for name, key in self.index_keys.items():
            try:
                keys.append((name, _hashable(key(document))))
            except Exception as exc:
                raise InvalidDocument(f"{where}: index {name!r} cannot key it "
                                      f"({type(exc).__name__}: {exc})") from None
        return tuple(keys)

    def add(self, entry: _Entry, keys: tuple[tuple[str, Any], ...] | None = None) -> None:
        """Cache `entry`, filed under `keys` (computed if not given).  A
        record whose index key fails (written by a process with other
        indexes, or by hand) is cached, found by id and by scans, and left
        out of the indexes, with a warning."""
        id = entry.document["id"]
        self.discard(id)
        try:
            entry.keys = self.keys_of(entry.document, entry.relpath) if keys is None else keys
        except InvalidDocument as exc:
            LOG.warning("%s", exc)
            entry.keys = ()
        self.entries[id] = entry
        self.id_of_path[entry.relpath] = id
        self.corrupt.pop(entry.relpath, None)
        for name, key in entry.keys:
            self.indexes[name].setdefault(key, set()).add(id)

    def discard(self, id: str) -> None:
        entry = self.entries.pop(id, None)
        if entry is None:
            return
        del self.id_of_path[entry.relpath]
        for name, key in entry.keys:
            ids = self.indexes[name].get(key)
            if ids is not None:
                ids.discard(id)


class Store:
    """A folder of JSON records, grouped in one folder per type.

    Use it as a context manager, or call `close()`: it stops the watcher and
    releases the git history's processes and files.
    """

    def __init__(self, path: str | os.PathLike[str], *, git: bool = False,
                 fsync: bool = True,
                 indexes: Mapping[str, Mapping[str, IndexKey]] | None = None,
                 watch: str = "native", poll_interval: float = 1.0,
                 lock_timeout: float = 30.0,
                 file_mode: int = 0o600, dir_mode: int = 0o700,
                 secret_fields: Mapping[str, Iterable[str]] | None = None,
                 describe: Describe | None = None,
                 author: str | None = None,
                 commit_mode: str = "sync", commit_delay: float = 0.2,
                 remote: str | None = None, sync_every: float | None = None,
                 sync_on_open: bool = False, sync_after_commit: bool = False) -> None:
        # Every option checked (gitpersist.options) before anything is made.
        opts = self.options = options.parse(dict(
            git=git, fsync=fsync, watch=watch, poll_interval=poll_interval,
            lock_timeout=lock_timeout, file_mode=file_mode, dir_mode=dir_mode, author=author,
            commit_mode=commit_mode, commit_delay=commit_delay, remote=remote,
            sync_every=sync_every, sync_on_open=sync_on_open,
            sync_after_commit=sync_after_commit))
        git, fsync, file_mode, dir_mode = opts.git, opts.fsync, opts.file_mode, opts.dir_mode
        self._syncer = None
        self._secret_fields = secret.check_fields(secret_fields, "secret_fields")
        self._secret_key = b""
        self._secrets_to_split: list[str] = []
        self._side_types: set[str] = set()
        self.root = os.path.abspath(os.fspath(path))
        self.fsync = fsync
        self.file_mode, self.dir_mode = file_mode, dir_mode
        self._describe = describe or describe_change
        self._index_keys = {paths.check_type(type): {name: _key_function(name, key)
                                                     for name, key in keys.items()}
                            for type, keys in (indexes or {}).items()}
        self._types: dict[str, _TypeCache] = {}
        self._lock = threading.RLock()          # the cache
        self._write_mutex = threading.RLock()    # writers of this process
        self._write_depth = 0       # how deep the mutex's owner is in _exclusive
        self._dirty: set[str] = set()
        self._dirty_all = False
        self._dirty_lock = threading.Lock()
        self._batch: list[tuple[Change, str]] | None = None
        self._closed = False

        self._open_folder()
        self._root_id = _identity(os.stat(self.root))
        self._meta_id = _identity(os.lstat(os.path.join(self.root, META_DIR)))
        self._file_lock = filelock.FileLock(
            os.path.join(self.root, LOCK_FILE), timeout=opts.lock_timeout,
            mode=file_mode, thread_local=False)
        self._check_format()
        self._watcher = (None if opts.watch == "off" else Watcher(
            self.root, self._on_change, self._on_lost, mode=opts.watch,
            poll_interval=opts.poll_interval))
        self._history = None
        for type in self._secrets_to_split:     # before recovery could commit them
            self._split_secrets(type)
        if git:
            from .history import History   # GitPython loads only when needed
            self._history = History(
                self.root, lock=self._exclusive, author=opts.author,
                commit_mode=opts.commit_mode, commit_delay=opts.commit_delay, fsync=fsync)
            try:
                with self._write_lock():
                    from .sync import finish_interrupted    # sync hook: a sync cut short
                    finish_interrupted(self)
                    self._history.recover()
            except BaseException:   # release the history's thread and the watcher
                self.close()
                raise
        if opts.syncing:    # a background syncer, and a sync on open if asked
            from .sync import Syncer
            try:
                self._syncer = Syncer(self, opts.remote, every=opts.sync_every,
                                      on_open=opts.sync_on_open,
                                      after_commit=opts.sync_after_commit)
            except BaseException:
                self.close()
                raise

    # -- reading -------------------------------------------------------------

    def get(self, type: str, id: str) -> Document | None:
        """The record, or None.  Raises `CorruptRecord` for a broken file."""
        entry = self._entry(type, id)
        return None if entry is None else orjson.loads(entry.data)

    def revision(self, type: str, id: str) -> str | None:
        """The record's current revision (for ``expect=``), or None.  For
        the revision of a record read with `get`, use ``revision_of(type,
        record)``: another process's write may land between two reads."""
        entry = self._entry(type, id)
        return None if entry is None else entry.revision

    def find(self, type: str, **filters: Any) -> list[Document]:
        """Records whose fields (or declared indexes) equal every filter,
        sorted by id.  Declared indexes answer without scanning."""
        with self._lock:
            cache = self._complete_type(type)
            ids: set[str] | None = None
            scan = {}
            for name, value in filters.items():
                if name in cache.indexes:
                    found = cache.indexes[name].get(_hashable(value), set())
                    ids = set(found) if ids is None else ids & found
                else:
                    scan[name] = value
            candidates = cache.entries.keys() if ids is None else ids
            result = []
            for id in sorted(candidates):
                entry = cache.entries[id]
                if all(entry.document.get(k) == v for k, v in scan.items()):
                    result.append(entry.data)
        return [orjson.loads(data) for data in result]

    def all(self, type: str) -> list[Document]:
        """Every record of `type`, sorted by id."""
        return self.find(type)

    def corrupt(self, type: str) -> list[CorruptRecord]:
        """The record files of `type` that `find` and `all` leave out (they
        do not parse, or hold an id that belongs elsewhere), sorted by file:
        how a caller tells that a listing is incomplete."""
        with self._lock:
            cache = self._complete_type(type)
            return [cache.corrupt[relpath] for relpath in sorted(cache.corrupt)]

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
        return secret.as_format(self._secret_fields)

    # -- writing -------------------------------------------------------------

    def put(self, type: str, id: str, document: Mapping[str, Any], *,
            expect: str | _Absent | None = None, message: str | None = None) -> str:
        """Store `document` as record `id` of `type`; return its revision.

        The file holds the document plus its ``"id"``.  A document that has
        an ``"id"`` must agree with `id`.  With ``expect=``, the write only
        happens if the record's current revision is `expect` (or the record
        is absent, for `ABSENT`).
        """
        relpath = paths.record_path(type, id)
        if not isinstance(document, Mapping):
            raise InvalidDocument(f"{type} {id!r}: a document is a mapping (a dict), "
                                  f"not {document.__class__.__name__}")
        if document.get("id", id) != id:
            raise InvalidDocument(f"{type} {id!r}: document has id {document['id']!r}")
        data = encoding.dumps({**document, "id": id}, f"{type} {id!r}")
        new = orjson.loads(data)    # the cache's own copy: the caller may change theirs
        revision = encoding.revision_of(data)
        names = self._secret_fields.get(type)
        public_data, public_revision, hidden = data, revision, {}
        if names:       # the secret fields go to the side file (gitpersist.secret)
            public, hidden = secret.split(new, names)
            if hidden:
                public_data = encoding.dumps(public, f"{type} {id!r}")
                public_revision = encoding.revision_of(public_data)
                revision = secret.revision(self._secret_key, public_revision, hidden)
        with self._write_lock():
            keys = self._cache(type).keys_of(new, f"{type} {id!r}")   # before anything is written
            old = self._check_expected(type, id, expect)
            self._commit_pending(relpath)
            if names:
                kept = self._write_secrets(relpath, id, public_revision, hidden)
            stat = self._write_file(relpath, public_data)
            if names:
                self._drop_old_secrets(relpath, id, public_revision, hidden, kept)
            if self._watcher is not None:
                self._watcher.watch_type(type, resync=False)
            self._cache(type).add(_Entry(relpath, new, data, revision, files.signature(stat)),
                                  keys)
            if self._history is not None:
                self._record(Change(relpath, public_data, public_revision),
                             message or self._message(type, id, old, new))
        return revision

    def revision_of(self, type: str, document: Mapping[str, Any]) -> str:
        """The revision `document` (a whole record, with its ``"id"``) has
        once stored: what `put` returns for it and `revision` reports."""
        data = encoding.dumps(dict(document), f"{type} {document.get('id')!r}")
        names = self._secret_fields.get(type)
        public, hidden = secret.split(document, names) if names else (document, {})
        if not hidden:
            return encoding.revision_of(data)
        public_data = encoding.dumps(public, f"{type} {document.get('id')!r}")
        return secret.revision(self._secret_key, encoding.revision_of(public_data), hidden)

    def delete(self, type: str, id: str, *, expect: str | _Absent | None = None,
               message: str | None = None) -> bool:
        """Remove the record; False if there was none."""
        relpath = paths.record_path(type, id)
        with self._write_lock():
            old = self._check_expected(type, id, expect)
            self._commit_pending(relpath)
            try:
                removed = files.remove(self.root, relpath, fsync=self.fsync)
                if self._secret_fields.get(type):       # after the record: never torn
                    files.remove(self.root, side_path(relpath), fsync=self.fsync)
            except OSError as exc:
                raise StoreError(f"cannot delete {self._abspath(relpath)}: {exc.strerror}") from None
            self._cache(type).discard(id)
            if removed and self._history is not None:
                self._record(Change(relpath, None, None),
                             message or self._message(type, id, old, None))
        return removed

    @contextmanager
    def batch(self, message: str) -> Iterator[Store]:
        """Group writes: with git, everything written inside becomes one
        commit with `message` when the block ends.  The store stays locked
        for other writers meanwhile.  Not a rollback unit: each write is
        durable as it happens, and on an exception the writes made so far are
        committed too, so history matches the files."""
        with self._write_lock():
            if self._batch is not None:        # nested: join the outer batch
                yield self
                return
            self._batch = []
            try:
                yield self
            finally:
                changes, self._batch = self._batch, None
                if changes and self._history is not None:
                    self._history.record([change for change, _ in changes], message)
                    if self._syncer is not None:
                        self._syncer.committed()

    # -- history -------------------------------------------------------------

    @property
    def history(self):  # -> History | None
        """The git history (None without ``git=True``)."""
        return self._history

    def versions(self, type: str, id: str, limit: int | None = None) -> list:
        """Commits that changed the record, newest first."""
        return self._require_history().versions(paths.record_path(type, id), limit)

    def get_at(self, type: str, id: str, rev: str) -> Document | None:
        """The record as it was at git revision `rev` (None if absent)."""
        relpath = paths.record_path(type, id)
        data = self._require_history().read(relpath, rev)
        return None if data is None else encoding.loads(data, f"{rev}:{relpath}")

    def diff(self, type: str, id: str, rev1: str, rev2: str | None = None) -> str:
        """Unified diff of the record between two revisions (`rev2`: now)."""
        return self._require_history().diff(paths.record_path(type, id), rev1, rev2)

    def restore(self, type: str, id: str, rev: str) -> str | None:
        """Make the record what it was at `rev` (a new write and commit)."""
        document = self.get_at(type, id, rev)
        message = f"{type} {id}: restore from {rev}"
        names = self._secret_fields.get(type)
        if names and document is not None:      # history never had them: keep today's
            document.update(secret.split(self.get(type, id) or {}, names)[1])
        if document is None:
            self.delete(type, id, message=message)
            return None
        return self.put(type, id, document, message=message)

    def flush(self) -> None:
        """Wait until every write so far is committed (asynchronous commits)."""
        if self._history is not None:
            self._history.flush()

    # -- sync with a git remote (gitpersist.sync) -----------------------------

    def sync(self):  # -> gitpersist.sync.SyncReport
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
        return self._exclusive()

    def apply_received(self, relpath: str, data: bytes | None) -> None:
        """Write (or, with None, remove) the store file at `relpath` as a
        sync received it, and tell the cache, as the watcher would (with
        ``watch="off"`` nothing else does).  Called inside `exclusive`."""
        if data is None:
            try:
                files.remove(self.root, relpath, fsync=self.fsync)
            except OSError as exc:
                raise StoreError(f"cannot delete {self._abspath(relpath)}: "
                                 f"{exc.strerror or exc}") from None
        else:
            self._write_file(relpath, data)
        self._on_change(relpath, False)

    def adopt_format(self) -> None:
        """After a sync wrote another host's format file: keep the secret
        fields it declares from now on (see `_adopt_format`)."""
        self._adopt_format()

    # -- life cycle ----------------------------------------------------------

    def close(self) -> None:
        """Stop the watcher, commit what is pending, release git processes."""
        if self._syncer is not None and not self._closed:
            self._syncer.close()    # first: its last sync needs the history
        if self._history is not None and not self._closed:
            self._history.close()   # first: committing what is queued takes the store lock
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._watcher is not None:
            self._watcher.close()
        if self._history is not None:
            self._history.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gitpersist.Store {self.root}{' git' if self._history else ''}>"

    # -- internals -----------------------------------------------------------

    def _open_folder(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(f"store path {self.root} exists and is not a folder")
        meta = os.path.join(self.root, META_DIR)
        try:    # a store folder made here is private: git's objects in it are 0444
            os.makedirs(self.root, mode=self.dir_mode, exist_ok=True)
            if not os.path.lexists(meta):
                os.mkdir(meta, self.dir_mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.root}: {exc.strerror}") from None
        if os.path.islink(meta) or not os.path.isdir(meta):
            raise StoreError(f"{meta} is a symlink or not a folder: the store never "
                             "follows a symlink")

    def _check_format(self) -> None:
        format_path = os.path.join(self.root, FORMAT_FILE)
        gitignore = self._abspath(GITIGNORE_FILE)
        found = files.read(format_path)
        # Also when only .gitignore is missing: a first open killed between
        # the two files left it so, and without it git would see write.lock.
        if found is None or not os.path.lexists(gitignore):
            with self._write_lock():
                if files.read(format_path) is None:
                    self._write_file(FORMAT_FILE, formatfile.render({}, self._secret_fields))
                if not os.path.lexists(gitignore):
                    self._write_file(GITIGNORE_FILE, META_GITIGNORE)
            found = found or files.read(format_path)
        self._open_secrets(formatfile.parse(found[0], format_path))

    def _open_secrets(self, format_document: dict[str, Any]) -> None:
        """Secret fields: those of the format file plus those of the option.
        New ones are written to the format file and their types' records
        split (`_secrets_to_split`); the key is read, or made."""
        declared = formatfile.declared_secrets(format_document)
        fields = {type: declared.get(type, frozenset()) | self._secret_fields.get(type, frozenset())
                  for type in declared.keys() | self._secret_fields.keys()}
        self._secret_fields = fields
        self._secrets_to_split = sorted(t for t in fields if fields[t] != declared.get(t))
        if not fields:
            return
        key = files.read(os.path.join(self.root, KEY_FILE))
        if key is None or self._secrets_to_split:
            with self._write_lock():
                if self._secrets_to_split:      # read again: others may have declared some
                    format_path = os.path.join(self.root, FORMAT_FILE)
                    format_document = formatfile.parse(files.read(format_path)[0], format_path)
                    for type, names in formatfile.declared_secrets(format_document).items():
                        self._secret_fields[type] = self._secret_fields.get(type, names) | names
                    self._write_file(FORMAT_FILE,
                                     formatfile.render(format_document, self._secret_fields))
                key = files.read(os.path.join(self.root, KEY_FILE))
                if key is None:
                    self._write_file(KEY_FILE, secret.new_key())
                    key = files.read(os.path.join(self.root, KEY_FILE))
        self._secret_key = key[0]
        self._sweep_secrets()

    def _adopt_format(self) -> None:
        """After a sync wrote another host's format file: keep the secret
        fields it declares from now on, and move those fields of the records
        already here to side files (as at open).  A declaration is never
        dropped: fields declared here and missing there are written back."""
        found = files.read(os.path.join(self.root, FORMAT_FILE))
        if found is None:
            return
        before = dict(self._secret_fields)
        with self._write_lock():
            # the union, written back if needed
            self._open_secrets(formatfile.parse(found[0], self._abspath(FORMAT_FILE)))
            self._secrets_to_split = []
            data = files.read(os.path.join(self.root, FORMAT_FILE))[0]
            if data != found[0] and self._history is not None:
                self._history.record([Change(FORMAT_FILE, data, encoding.revision_of(data))],
                                     "gitpersist: keep the secret fields declared here")
            for type, names in sorted(self._secret_fields.items()):
                if names != before.get(type):
                    self._split_secrets(type)

    def _sweep_secrets(self) -> None:
        """Remove the side files whose record is gone (a deletion stopped
        between its two files): a record made later under the same id, by
        a sync say, must not inherit their secrets.  And the temp files of
        writers that are gone."""
        orphans = [relpath for relpath in self._side_files()
                   if not os.path.lexists(self._abspath(relpath))]
        if not orphans:
            return
        try:
            with self._write_lock():
                for relpath in orphans:
                    if not os.path.lexists(self._abspath(relpath)):
                        files.remove(self.root, side_path(relpath), fsync=self.fsync)
        except (StoreError, OSError) as exc:     # a read-only store still opens
            LOG.warning("%s: secret fields of deleted records left in place: %s",
                        self.root, exc)

    def _side_files(self) -> Iterator[str]:
        """The record relpaths that have a side file (and the relpaths of
        temp files beside them)."""
        for type in self._secret_fields:
            try:
                shards = list(os.scandir(os.path.join(self.root, SECRETS_DIR, type)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for shard in shards:
                if shard.is_dir(follow_symlinks=False):
                    for file in os.scandir(shard.path):
                        relpath = f"{type}/{shard.name}/{file.name}"
                        if (paths.split_record_path(relpath) is not None
                                or files.is_stale_temp(file.name)):
                            yield relpath

    def _split_secrets(self, type: str) -> None:
        """Move newly declared secret fields of `type`'s records to side files."""
        names = self._secret_fields[type]
        for document in self.all(type):
            if names & document.keys():
                self.put(type, document["id"], document,
                         message=f"{type} {document['id']}: secret fields kept local")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Exclude every other writer: threads of this process, then other
        processes.  Readers of this process are not blocked while waiting.
        Re-entrant: a write inside a batch reuses the batch's locks."""
        with self._write_mutex:
            if self._write_depth:       # held by this thread already
                self._check_root()
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            if self._closed:
                raise StoreError(f"store {self.root} is closed")
            self._check_root()          # first: taking the lock recreates its folder
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise LockTimeout(
                    f"could not lock {self._file_lock.lock_file} within "
                    f"{self._file_lock.timeout} s (lock_timeout)") from None
            except FileNotFoundError:
                raise StoreError(f"store folder {self.root} is missing") from None
            except OSError as exc:      # a read-only file system, no permission...
                raise StoreError(f"cannot lock {self._file_lock.lock_file}: "
                                 f"{exc.strerror or exc}") from None
            try:
                self._check_root()      # again: it may have gone while we waited
                self._write_depth = 1
                yield
            finally:
                self._write_depth = 0
                self._file_lock.release()

    def _check_root(self) -> None:
        """Refuse to write once the store folder was removed, moved or
        replaced: the cache and the watcher know the folder that was opened."""
        try:
            same = _identity(os.stat(self.root)) == self._root_id
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreError(f"store folder {self.root} is missing: removed, moved or "
                             "replaced since the store was opened")
        meta = os.path.join(self.root, META_DIR)
        try:    # the lock file lives there, and filelock follows symlinked folders
            same = _identity(os.lstat(meta)) == self._meta_id
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreError(f"{meta} was removed or replaced (by a symlink?) since the "
                             "store was opened")

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """`_exclusive`, plus the cache (readers wait while a write lands)."""
        with self._exclusive(), self._lock:
            yield

    def _write_file(self, relpath: str, data: bytes) -> os.stat_result:
        try:
            return files.write_atomic(self.root, relpath, data, fsync=self.fsync,
                                      file_mode=self.file_mode, dir_mode=self.dir_mode)
        except FileNotFoundError:
            raise StoreError(f"store folder {self.root} is missing") from None
        except OSError as exc:
            raise StoreError(f"cannot write {self._abspath(relpath)}: {exc.strerror}") from None

    def _record(self, change: Change, message: str) -> None:
        if self._batch is not None:
            self._batch.append((change, message))
        else:
            self._history.record([change], message)
            if self._syncer is not None:
                self._syncer.committed()

    def _commit_pending(self, relpath: str) -> None:
        """With git: a change of `relpath` not committed yet (and not part of
        this batch) gets its own commit before ours (`History.commit_pending`)."""
        if self._history is not None and not (
                self._batch is not None and any(c.relpath == relpath for c, _ in self._batch)):
            self._history.commit_pending(relpath)

    def _check_expected(self, type: str, id: str, expect: str | _Absent | None) -> _Entry | None:
        """The record as it is on disk now (needed for `expect` and for
        commit messages); raise if `expect` does not hold.  Read under the
        write lock from the file, not the cache: another process may have
        written it a moment ago and its event may not have arrived yet."""
        if expect is None and self._history is None:
            return None
        relpath = paths.record_path(type, id)
        try:
            current = self._read_entry(relpath)
        except CorruptRecord:
            current = None          # a broken record may always be overwritten
        if expect is not None:
            actual = current.revision if current else None
            wanted = None if expect is ABSENT else expect
            if actual != wanted:
                # The caller will read again to retry: let it see the file,
                # even if no watcher event brought it (watch="off").
                if current is None:
                    self._cache(type).discard(id)
                elif current.document["id"] == id:
                    self._cache(type).add(current)
                raise ConflictError(type, id, wanted, actual)
        return current

    def _message(self, type: str, id: str, old: _Entry | None, new: Document | None) -> str:
        """The commit message of a change: `describe` sees the records
        without their secret fields (it may quote values)."""
        names = self._secret_fields.get(type)
        before = old and old.document
        if names:
            before = before and secret.split(before, names)[0]
            new = new and secret.split(new, names)[0]
        return self._describe(type, id, before, new)

    def _require_history(self):
        if self._history is None:
            raise StoreError(f"store {self.root} has no git history (open it with git=True)")
        return self._history

    def _abspath(self, relpath: str) -> str:
        return os.path.join(self.root, *relpath.split("/"))

    def _cache(self, type: str) -> _TypeCache:
        cache = self._types.get(type)
        if cache is None:
            cache = self._types[type] = _TypeCache(self._index_keys.get(type, {}))
        return cache

    def _entry(self, type: str, id: str) -> _Entry | None:
        relpath = paths.record_path(type, id)
        with self._lock:
            self._apply_changes()
            cache = self._cache(type)
            entry = cache.entries.get(id)
            if relpath in cache.corrupt:
                raise cache.corrupt[relpath]
            if entry is None and not cache.complete:
                entry = self._read_entry(relpath)
                if entry is not None:
                    if entry.document["id"] != id:
                        raise CorruptRecord(self._abspath(relpath),
                                            f"holds id {entry.document['id']!r}, not {id!r}")
                    cache.add(entry)
            return entry

    def _read_entry(self, relpath: str, path: str | None = None,
                    sides: bool | None = None) -> _Entry | None:
        """The record at `relpath` with its secret fields, or None.  `sides`:
        whether its type may have side files, if the caller knows."""
        path = path or self._abspath(relpath)
        try:
            found = files.read(path)
        except OSError as exc:
            raise CorruptRecord(path, exc.strerror or str(exc)) from None
        if found is None:
            return None
        data, stat = found
        document, revision = encoding.loads(data, path), encoding.revision_of(data)
        type = relpath.split("/", 1)[0]
        names = self._secret_fields.get(type)
        if names and (self._may_have_side_files(type) if sides is None else sides):
            entry = secret.entry_for(self._read_side(relpath), revision)
            hidden = {k: v for k, v in (entry or {}).get("fields", {}).items() if k in names}
            if hidden:
                document = {**document, **hidden}
                data = encoding.dumps(document, path)
                revision = secret.revision(self._secret_key, revision, hidden)
        return _Entry(relpath, document, data, revision, files.signature(stat))

    def _may_have_side_files(self, type: str) -> bool:
        """False if no record of `type` has a side file: its secrets folder
        does not exist (one stat instead of a failed open per record).
        Asked after the record was read, and a side file is written before
        its record: a record with secrets is never read as one without."""
        if type in self._side_types:
            return True
        if os.path.isdir(os.path.join(self.root, SECRETS_DIR, type)):
            self._side_types.add(type)      # folders stay: remembered for good
            return True
        return False

    def _read_side(self, relpath: str, quiet: bool = False) -> dict[str, Any] | None:
        """The side file of the record at `relpath`, or None; a broken one
        raises `CorruptRecord` naming it (is None, with `quiet`)."""
        path = self._abspath(side_path(relpath))
        try:
            found = files.read(path)
            return None if found is None else secret.read_side(found[0], path)
        except (OSError, CorruptRecord) as exc:
            if quiet:
                return None
            if isinstance(exc, CorruptRecord):
                raise
            raise CorruptRecord(path, exc.strerror or str(exc)) from None

    def _write_secrets(self, relpath: str, id: str, public_revision: str,
                       hidden: Document) -> bool:
        """Before the record file: write its secret fields to the side file,
        keeping the entry of the record version on disk until it is
        replaced.  True if that previous entry was kept."""
        if not hidden:
            return False
        side = self._read_side(relpath, quiet=True)
        previous = None
        if side is not None:
            try:
                found = files.read(self._abspath(relpath))
            except OSError:
                found = None
            if found is not None:
                previous = secret.entry_for(side, encoding.revision_of(found[0]))
        self._write_file(side_path(relpath), secret.side_data(
            id, public_revision, hidden, previous, relpath))
        return previous is not None

    def _drop_old_secrets(self, relpath: str, id: str, public_revision: str,
                          hidden: Document, kept: bool) -> None:
        """After the record file: the previous secrets go (the whole side
        file if the record has no secret fields now)."""
        side = side_path(relpath)
        if not hidden:
            if not self._may_have_side_files(relpath.split("/", 1)[0]):
                return      # the common case: none to remove (we hold the lock)
            try:
                files.remove(self.root, side, fsync=self.fsync)
            except OSError as exc:
                raise StoreError(f"cannot delete {self._abspath(side)}: {exc.strerror}") from None
        elif kept:
            self._write_file(side, secret.side_data(id, public_revision, hidden, None, relpath))

    def _complete_type(self, type: str) -> _TypeCache:
        """The type's cache, after loading every record file of the type."""
        self._apply_changes()
        cache = self._cache(paths.check_type(type))
        if cache.complete:
            return cache
        folder = os.path.join(self.root, type)
        # Whether to look for side files is asked once, not per record, and
        # again at the end: a side file that appeared meanwhile (written
        # before its record) means reading every record again, with them.
        sides = self._may_have_side_files(type)
        while True:
            try:
                shards = [e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                shards = []
            for shard in shards:
                self._load_folder(cache, f"{type}/{shard.name}", shard.path, sides)
            if sides or not self._may_have_side_files(type):
                break
            sides = True
            self._types[type] = cache = _TypeCache(self._index_keys.get(type, {}))
        cache.complete = True
        return cache

    def _load_folder(self, cache: _TypeCache, relfolder: str, folder: str,
                     sides: bool | None = None) -> None:
        for file in os.scandir(folder):
            if files.is_stale_temp(file.name):
                files.unlink_quietly(file.path)
            elif paths.split_record_path(f"{relfolder}/{file.name}") is not None:
                self._sync_file(cache, f"{relfolder}/{file.name}", file.path, sides)

    def _sync_file(self, cache: _TypeCache, relpath: str, path: str | None = None,
                   sides: bool | None = None) -> None:
        """Bring the cache in line with the file at `relpath` (`path`: its
        absolute path, if the caller has it; `sides`: see `_read_entry`)."""
        path = path or self._abspath(relpath)
        old_id = cache.id_of_path.get(relpath)
        old = cache.entries.get(old_id) if old_id is not None else None
        cache.corrupt.pop(relpath, None)
        if old is not None:
            try:
                if files.signature(os.lstat(path)) == old.signature:
                    return      # unchanged (typically our own write)
            except FileNotFoundError:
                pass
            cache.discard(old_id)
        try:
            entry = self._read_entry(relpath, path, sides)
        except CorruptRecord as exc:
            LOG.warning("skipping %s", exc)
            cache.corrupt[relpath] = exc
            return
        if entry is None:
            return
        id = entry.document["id"]
        if paths.record_path(relpath.split("/", 1)[0], id) != relpath:
            misplaced = CorruptRecord(path, f"it holds id {id!r}, which belongs at another path")
            LOG.warning("skipping %s", misplaced)
            cache.corrupt[relpath] = misplaced
            return
        cache.add(entry)

    # -- cache invalidation (called from the watcher thread) -----------------

    def _on_change(self, relpath: str, is_dir: bool) -> None:
        with self._dirty_lock:
            self._dirty.add(relpath + "/" if is_dir else relpath)

    def _on_lost(self) -> None:
        with self._dirty_lock:
            self._dirty_all = True

    def _apply_changes(self) -> None:
        """Apply the paths the watcher reported since the last call."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
            dirty_all, self._dirty_all = self._dirty_all, False
        if dirty_all:
            self._types.clear()
            return
        for relpath in dirty:
            type = relpath.split("/", 1)[0]
            cache = self._types.get(type)
            if cache is None:
                continue
            try:
                if relpath.endswith("/"):
                    self._folder_changed(cache, relpath.rstrip("/"))
                elif paths.split_record_path(relpath) is None:
                    continue
                elif cache.complete or relpath in cache.id_of_path:
                    self._sync_file(cache, relpath)
                # else: not cached, so the next read goes to disk anyway
            except Exception as exc:    # e.g. a folder gone between two calls
                # The other paths must still be applied: forget this type
                # instead, the next read loads it again.
                LOG.warning("%s: reloading %s after %s: %s", self.root, type,
                            relpath, exc)
                self._types.pop(type, None)

    def _folder_changed(self, cache: _TypeCache, relfolder: str) -> None:
        """A folder appeared, vanished or moved: resync what lies below it."""
        if "/" not in relfolder:        # a whole type folder: reload lazily
            self._types.pop(relfolder, None)
            return
        prefix = relfolder + "/"
        for relpath in [p for p in cache.id_of_path if p.startswith(prefix)]:
            self._sync_file(cache, relpath)
        folder = self._abspath(relfolder)
        if cache.complete and os.path.isdir(folder):
            self._load_folder(cache, relfolder, folder)


def _key_function(name: str, key: IndexKey) -> Callable[[Document], Any]:
    if callable(key):
        return key
    field = name if key is None else key
    if not isinstance(field, str):
        raise ConfigError(f"index {name!r}: give a field name or a function of the document")
    return lambda document: document.get(field)


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino
