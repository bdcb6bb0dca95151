"""The in-process cache of records, over the reader, over the files.

Per type, a `gitpersist.typecache.TypeCache`: the entries read or
written, the record files found broken, whether the whole type folder
was loaded, and equality indexes once it was.  Paths the watcher reports
as changed are queued (`changed`, `lost`: called from a watcher's thread,
or from `poll`, the hook a watcher read by the caller drains through) and
applied at the next read, under the cache lock, each checked against its
file by `gitpersist.resync` (the read-time validation, also used when
nothing watches).

Locking rule: one re-entrant lock, `Cache.lock`, guards every structure
here.  It is a leaf in the store's lock order (`gitpersist.locking`):
held for in-memory work and for reading a record file that is not cached
yet, never while a write's file or git I/O runs, so readers never wait for
a commit.  Listeners (`CacheListener`) and subscribers' callbacks
(`gitpersist.changefeed.Subscribers`: every change learned of, from the
change log, this process's writes and the watcher) are called with the
lock held: they must be quick and must not call back into the store.

Guarantees (tests: ``tests/test_cache.py``, ``tests/test_store.py``,
``tests/test_watch.py``):

* A read returns what the cache holds only while the file's signature
  (inode, mtime, size) is the one read, or no change was reported for it;
  a record not cached is read from disk.
* A record file that does not parse is left out of listings (`corrupt`
  names it) and raises `CorruptRecord` when asked for by id.
* An index key function that fails on a record read from disk leaves that
  record out of that index, with a warning (`gitpersist.typecache`); on a
  write it refuses the write before anything is written (`keys_of`).
* Loading a whole type takes each record whose file is unchanged from the
  type's snapshot (`gitpersist.snapshot`, which states when a file counts
  as unchanged) and reads the others; the snapshot is saved after a load
  that read many files and at `close` if the type changed (tests:
  ``tests/test_snapshot.py``).
"""

from __future__ import annotations

import gc
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from . import paths
from .codec import Document
from .changefeed import Event, Subscribers
from .changelog import ChangeLog
from .errors import ConfigError, CorruptRecord
from .query import Condition
from .layout import FORMAT_FILE
from .reader import Entry, Reader
from .records import RecordFiles
from .resync import Resync
from .sidefiles import SideFiles
from .snapshot import Shard, Snapshots
from .typecache import Keys, TypeCache, hashable

LOG = logging.getLogger(__name__)

IndexKey = str | Callable[[Document], Any] | None


@runtime_checkable
class CacheListener(Protocol):
    """Told what the cache learns, for caches built over it (objects made
    from records).  Called with the cache lock held.  `removed` is also
    called when the cache only drops an entry another process changed (no
    `stored` follows unless the type is loaded whole): for changes, take a
    callback of `Event` (`Cache.subscribe`)."""

    def stored(self, type: str, id: str, revision: str) -> None: ...

    def removed(self, type: str, id: str) -> None: ...

    def invalidated(self, type: str | None) -> None:
        """Everything of `type` (None: of every type) may have changed."""


class Cache:
    """The records of the store whose files are `files`, read by `reader`."""

    def __init__(self, files: RecordFiles, reader: Reader, sides: SideFiles, log: ChangeLog,
                 indexes: Mapping[str, Mapping[str, IndexKey]]) -> None:
        self._files = files
        self._log = log
        self._reader = reader
        self._sides = sides
        self._index_keys = {paths.check_type(type): {name: key_function(name, key)
                                                     for name, key in keys.items()}
                            for type, keys in indexes.items()}
        self._types: dict[str, TypeCache] = {}
        self.snapshots = Snapshots(files, sides.codec, reader)
        self._resync = Resync(files, reader, self._add, self._discard)
        self.lock = threading.RLock()
        self.listeners: list[CacheListener] = []
        self.subscribers = Subscribers()
        self._dirty: set[str] = set()
        self._dirty_all = False
        self._dirty_lock = threading.Lock()
        # True while nothing reports changes made by other means (hand edits,
        # git): reads then check their files themselves (see `validating`).
        self.unwatched: Callable[[], bool] = lambda: False
        # Called first by every read and settle, under the lock: a watcher
        # read by the caller (`gitpersist.inotify`) reports through
        # `changed` and `lost` then.
        self.poll: Callable[[], None] = lambda: None
        # Called when the change log says the format file changed: returns
        # the types whose secret fields grew (their entries are forgotten).
        self.declaration_changed: Callable[[], list[str]] = lambda: []

    # -- reads ---------------------------------------------------------------------

    def entry(self, type: str, id: str) -> Entry | None:
        """The record, from the cache or else from disk."""
        relpath = paths.record_path(type, id)
        with self.lock:
            self._apply_changes()
            cache = self._cache(type)
            if self.unwatched():        # one lstat: is the file still what we hold?
                self._resync.file(cache, relpath)
            entry = cache.entries.get(id)
            if relpath in cache.corrupt:
                raise cache.corrupt[relpath]
            if entry is None and not cache.complete:
                entry = self._reader.read(relpath)
                if entry is not None:
                    if entry.document["id"] != id:
                        raise CorruptRecord(self._files.path(relpath),
                                            f"holds id {entry.document['id']!r}, not {id!r}")
                    self._add(cache, entry)
            return entry

    def find(self, type: str, conditions: list[Condition]) -> list[bytes]:
        """The data of the records that meet every condition (`gitpersist.query`),
        sorted by id; ``=`` and ``in`` on a declared index use it."""
        return [entry.data for entry in self.matching(type, conditions)]

    def matching(self, type: str, conditions: list[Condition]) -> list[Entry]:
        """The entries `find` answers with (the caller must not change them)."""
        with self.lock:
            cache = self.complete(type)
            ids: set[str] | None = None
            scan = []
            for condition in conditions:
                index = cache.indexes.get(condition.name)
                if index is not None and condition.op in ("=", "in"):
                    found = set().union(*(index.get(_key(value), set()) for value in (
                        [condition.value] if condition.op == "=" else condition.value)))
                    ids = found if ids is None else ids & found
                else:
                    scan.append(condition)
            candidates = cache.entries.keys() if ids is None else ids
            return [cache.entries[id] for id in sorted(candidates)
                    if all(c.matches(cache.entries[id].document) for c in scan)]

    def corrupt(self, type: str) -> list[CorruptRecord]:
        with self.lock:
            cache = self.complete(type)
            broken = {**cache.unreadable, **cache.corrupt}
            return [broken[relpath] for relpath in sorted(broken)]

    def complete(self, type: str) -> TypeCache:
        """The type's cache, after loading every record file of the type."""
        with self.lock:
            self._apply_changes()
            cache = self._cache(paths.check_type(type))
            if cache.complete:
                if self.unwatched():
                    self._resync.rescan(cache, type)
                return cache
            # Whether to look for side files is asked once, not per record, and
            # again at the end: a side file that appeared meanwhile (written
            # before its record) means reading every record again, with them.
            sides = self._sides.may_have(type)
            with gc_paused():
                snapshot = self.snapshots.load(type)
                while True:
                    read = sum(self._load_folder(cache, relfolder, folder, sides, snapshot)
                               for relfolder, folder in self._resync.shards(cache, type))
                    if sides or not self._sides.may_have(type):
                        break
                    sides = True
                    self._types[type] = cache = TypeCache(self._index_keys.get(type, {}))
                del snapshot        # freed now, while the collector is off
            cache.complete = True
            cache.unsaved = read
            if read * 8 >= len(cache.entries):     # an eighth or more read from disk
                self._save(type, cache)
            return cache

    def save_snapshots(self) -> None:
        """Save each complete type's snapshot if it changed (at close)."""
        with self.lock:
            for type, cache in self._types.items():
                if cache.complete and cache.unsaved:
                    self._save(type, cache)

    def subscribe(self, listener: CacheListener | Callable[[Event], None]) -> None:
        """A `CacheListener` hears what the cache learns; a callback, every
        change it learns of (`Subscribers`), from now on."""
        with self.lock:
            if isinstance(listener, CacheListener):
                self.listeners.append(listener)
            else:
                self.subscribers.add(listener, self._apply_changes, self._types.values())

    # -- what writes tell it -------------------------------------------------------

    def keys_of(self, type: str, document: Document, where: str) -> Keys:
        """The index keys of a document about to be written (refuses it,
        naming the index, before anything is written)."""
        with self.lock:
            return self._cache(type).keys_of(document, where)

    def stored(self, entry: Entry, keys: Keys | None = None) -> None:
        """`entry` is on disk now (written here, or found by a write)."""
        with self.lock:     # the write settled the log before: what it tells is older
            self._add(self._cache(entry.relpath.split("/", 1)[0]), entry, keys)
            self.subscribers.tell(entry.relpath, entry.revision)

    def removed(self, type: str, id: str, found: bool = True) -> None:
        """This process removed the record (`found`: there was a file)."""
        with self.lock:
            self.subscribers.settle(self._apply_changes)    # what others did before, first
            self._discard(self._cache(type), type, id)
            if found:
                self.subscribers.tell(paths.record_path(type, id), None)

    def refreshed(self, type: str, id: str, entry: Entry | None) -> None:
        """A write found the record on disk as `entry` (None: absent or
        broken) and will not write it: let the next read see that file, even
        if no watcher event brought it (``watch="off"``)."""
        with self.lock:
            if entry is None:
                self._discard(self._cache(type), type, id)
            elif entry.document.get("id") == id:
                self._add(self._cache(type), entry)

    # -- what the watcher tells it (its thread) ----------------------------------

    def changed(self, relpath: str, is_dir: bool) -> None:
        with self._dirty_lock:
            self._dirty.add(relpath + "/" if is_dir else relpath)

    def lost(self) -> None:
        with self._dirty_lock:
            self._dirty_all = True

    def declared(self) -> None:
        """The format file changed: take its declaration now (the types
        whose secret fields grew are forgotten, read again without them)."""
        with self.lock:
            for type in self.declaration_changed():
                self._forget(type)

    def settle(self) -> None:
        """Apply the changes reported so far now, not at the next read."""
        with self.lock:
            self._apply_changes()

    # -- internals ---------------------------------------------------------------

    def _cache(self, type: str) -> TypeCache:
        cache = self._types.get(type)
        if cache is None:
            cache = self._types[type] = TypeCache(self._index_keys.get(type, {}))
        return cache

    def _add(self, cache: TypeCache, entry: Entry, keys: Keys | None = None) -> None:
        cache.add(entry, keys)
        for listener in self.listeners:
            listener.stored(entry.relpath.split("/", 1)[0], entry.document["id"], entry.revision)

    def _discard(self, cache: TypeCache, type: str, id: str) -> None:
        if cache.discard(id) is not None:
            for listener in self.listeners:
                listener.removed(type, id)

    def _forget(self, type: str | None) -> None:
        if type is None:
            self._types.clear()
        else:
            self._types.pop(type, None)
        for listener in self.listeners:
            listener.invalidated(type)

    def _save(self, type: str, cache: TypeCache) -> None:
        if self.snapshots.save(type, cache.entries.values()):
            cache.unsaved = 0

    def _load_folder(self, cache: TypeCache, relfolder: str, folder: str,
                     sides: bool | None = None, snapshot: dict[str, Shard] | None = None
                     ) -> int:
        """Load the records of a shard folder; how many files were read."""
        entries, others = self.snapshots.restore(
            (snapshot or {}).get(relfolder.rsplit("/", 1)[1]), relfolder, folder,
            functools.partial(self._resync.shard, cache, relfolder, folder))
        for entry in entries:
            self._add(cache, entry)
        for relpath, path in others:
            self._resync.file(cache, relpath, path, sides)
        return len(others)

    def _apply_changes(self) -> None:
        """Apply what the change log and the watcher reported since the
        last call."""
        self.poll()
        news = self._log.news()
        if news is None:        # the log was replaced: a declaration may be in what it lost
            self.declaration_changed()
            self._forget(None)
        for relpath, revision in news or ():
            self._logged(relpath, revision)
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
            dirty_all, self._dirty_all = self._dirty_all, False
        if dirty_all:
            self._forget(None)
            return
        for relpath in dirty:
            self.subscribers.seen(relpath, self._reader.revision)
            type = relpath.split("/", 1)[0]
            cache = self._types.get(type)
            if cache is None:
                continue
            try:
                if relpath.endswith("/"):
                    self._folder_changed(cache, relpath.rstrip("/"))
                elif paths.split_record_path(relpath) is None:
                    continue
                elif cache.complete or relpath in cache.id_of_path or relpath in cache.corrupt:
                    self._resync.file(cache, relpath)
                # else: not cached, so the next read goes to disk anyway
            except Exception as exc:    # e.g. a folder gone between two calls
                # The other paths must still be applied: forget this type
                # instead, the next read loads it again.
                LOG.warning("%s: reloading %s after %s: %s", self._files.root, type,
                            relpath, exc)
                self._forget(type)

    def _logged(self, relpath: str, revision: str | None) -> None:
        """A store wrote `relpath` with `revision` (None: removed): unless
        the cache holds just that, the next read of it goes to the file,
        whatever the file's signature says."""
        if relpath == FORMAT_FILE:      # another process declared secret fields
            self.declared()
            return
        self.subscribers.tell(relpath, revision)
        type = relpath.split("/", 1)[0]
        cache = self._types.get(type)
        if cache is None:
            return
        id = cache.id_of_path.get(relpath)
        entry = cache.entries.get(id) if id is not None else None
        if entry is not None and entry.revision == revision:
            return
        if entry is not None:
            self._discard(cache, type, entry.document["id"])
        cache.corrupt.pop(relpath, None)
        if cache.complete:
            self._resync.file(cache, relpath)

    def _folder_changed(self, cache: TypeCache, relfolder: str) -> None:
        """A folder appeared, vanished or moved: resync what lies below it."""
        if "/" not in relfolder:        # a whole type folder: reload lazily
            self._forget(relfolder)
        else:
            self._resync.folder(cache, relfolder)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector off for a block that makes many objects and
    frees none (any number of threads at once; the collector's own state is
    restored when the last one leaves): loading 100k records ran about 1.5 s
    of collections (of 7.9 s) that found nothing to free, and the plugin's
    clones of its templates (`gitpersist.cinder.objects`) listed 2,000
    volumes 2.5-3.2x slower with it on (two runs, load 7-8)."""
    global _paused
    with _paused_lock:
        if _paused == 0:
            _paused_enabled[0] = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _paused_enabled[0]:
                gc.enable()


_paused = 0
_paused_lock = threading.Lock()
_paused_enabled = [True]


def key_function(name: str, key: IndexKey) -> Callable[[Document], Any]:
    if callable(key):
        return key
    field = name if key is None else key
    if not isinstance(field, str):
        raise ConfigError(f"index {name!r}: give a field name or a function of the document")
    return lambda document: document.get(field)


def _key(value: Any) -> Any:
    """`value` as an index key; a value that is no JSON value has none."""
    try:
        return hashable(value)
    except TypeError:
        return _NO_KEY


_NO_KEY = object()
