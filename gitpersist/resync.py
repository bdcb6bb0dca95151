"""Read-time validation: bringing a type's cached records in line with its
record files on disk, for one file (`Resync.file`), a shard folder
(`Resync.folder`) or the whole type (`Resync.rescan`, what a polling
watcher would do, at read time), and listing what folders can be listed.

Locking rule: no lock of its own and no state: every call is made with
the owner's lock held (`gitpersist.cache.Cache.lock`) and changes only the
`TypeCache` it is given, adding and dropping entries through the owner's
`add` and `discard` so that the owner's listeners hear of them.

Guarantees (tests: ``tests/test_cache.py``, ``tests/test_store.py``,
``tests/test_watch.py``):

* A cached entry is kept only while its file's signature (inode, mtime,
  size) is the one read and was not racy when read; otherwise the file is
  read again, and a file gone drops the entry.
* A record file that does not parse, or holds an id that belongs at
  another path, is kept in the type's `corrupt` (left out of listings) and
  not read again while its signature stays the one found broken.
* A folder that cannot be listed is skipped, logged once and kept in the
  type's `unreadable` until it can be listed again; the rest is listed
  past it (``tests/test_store.py::test_corrupt_names_what_a_listing_left_out``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from . import files, paths
from .errors import CorruptRecord, UnreadableFolder
from .reader import Entry, Reader
from .records import RecordFiles
from .typecache import TypeCache

LOG = logging.getLogger(__name__)


class Resync:
    """Checks the records of `files` against the cache, reading with `reader`."""

    def __init__(self, files: RecordFiles, reader: Reader,
                 add: Callable[[TypeCache, Entry], None],
                 discard: Callable[[TypeCache, str, str], None]) -> None:
        self._files = files
        self._reader = reader
        self._add = add
        self._discard = discard

    def file(self, cache: TypeCache, relpath: str, path: str | None = None,
             sides: bool | None = None) -> None:
        """Bring the cache in line with the file at `relpath` (at `path`
        if a listing found it there)."""
        listed, path = path, path or self._files.path(relpath)
        type = relpath.split("/", 1)[0]
        old_id = cache.id_of_path.get(relpath)
        old = cache.entries.get(old_id) if old_id is not None else None
        if relpath in cache.corrupt:
            seen = cache.corrupt_signatures.get(relpath)
            try:
                if seen is not None and self._files.signature(path) == seen[0] \
                        and not files.racy(*seen):
                    return      # the same broken file: already reported
            except FileNotFoundError:
                pass
            cache.corrupt.pop(relpath)
        if old is not None:
            try:
                if self._files.signature(path) == old.signature and not old.racy():
                    return      # unchanged (typically our own write)
            except FileNotFoundError:
                pass
            self._discard(cache, type, old.document["id"])
        checked = time.time_ns()
        try:
            entry = self._reader.read(relpath, listed, sides)
        except CorruptRecord as exc:
            cache.broken(relpath, path, exc, checked)
            return
        if entry is None:
            return
        id = entry.document["id"]
        if paths.record_path(type, id) != relpath:
            cache.broken(relpath, path, CorruptRecord(
                path, f"it holds id {id!r}, which belongs at another path"), checked)
            return
        self._add(cache, entry)

    def rescan(self, cache: TypeCache, type: str) -> None:
        """Bring a complete type in line with its folder: one stat per file."""
        seen = set()
        for relpath, path in self.listing(cache, type):
            seen.add(relpath)
            self.file(cache, relpath, path)
        for relpath in [p for p in [*cache.id_of_path, *cache.corrupt] if p not in seen]:
            cache.corrupt.pop(relpath, None)
            self.file(cache, relpath)

    def folder(self, cache: TypeCache, relfolder: str) -> None:
        """A shard folder appeared, vanished or moved: resync what lies
        below it (and what it lists, if the type is complete)."""
        prefix = relfolder + "/"
        for relpath in [p for p in cache.id_of_path if p.startswith(prefix)]:
            self.file(cache, relpath)
        if cache.complete and self._files.is_folder(relfolder):
            for relpath, path in self.shard(cache, relfolder, self._files.path(relfolder)):
                self.file(cache, relpath, path)

    def listing(self, cache: TypeCache, type: str) -> list[tuple[str, str]]:
        """(relpath, path) of every record file of `type` that can be
        listed; the rest is listed past a folder that cannot be."""
        return [file for relfolder, folder in self.shards(cache, type)
                for file in self.shard(cache, relfolder, folder)]

    def shards(self, cache: TypeCache, type: str) -> list[tuple[str, str]]:
        """(relfolder, folder) of the type's shard folders, if it can be listed."""
        return self.listed(cache, type, lambda: self._files.shards(type))

    def shard(self, cache: TypeCache, relfolder: str, folder: str) -> list[tuple[str, str]]:
        """(relpath, path) of the shard folder's record files, if it can be listed."""
        return self.listed(cache, relfolder,
                           functools.partial(self._files.record_files, relfolder, folder))

    @staticmethod
    def listed(cache: TypeCache, relfolder: str,
               list: Callable[[], list[tuple[str, str]]]) -> list[tuple[str, str]]:
        """What `list()` lists of `relfolder`; if it cannot be listed,
        nothing, and the folder is kept in `cache.unreadable` (named by
        `corrupt`, logged once)."""
        try:
            found = list()
        except UnreadableFolder as exc:
            if relfolder not in cache.unreadable:
                LOG.warning("skipping %s", exc)
            cache.unreadable[relfolder] = exc
            return []
        cache.unreadable.pop(relfolder, None)
        return found
