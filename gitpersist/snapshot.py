"""The cache's snapshot: a type's records as last known, saved so that the
next open reads only the record files that changed since.

A snapshot is local state, one file per type,
``.gitpersist/snapshot/<type>.snap``, signed with the key beside it
(``key``, always ``0600``); never committed: the meta folder's
``.gitignore`` keeps all but the format file out of git.  It holds, for each record, the file's full signature
(inode, mtime, size and ctime, which no user call can set back), the time
it was read, its revision and the record file's bytes.  A record is taken
from the snapshot only if the file's signature is the one saved; any other
file is read as without a snapshot.

The rules (tests: ``tests/test_snapshot.py``):

* **Content: a file's own signature, settled.**  A row is saved only if
  the file's ctime was safely older than the read it holds (`settled`:
  2 s for coarse timestamps, git's "racy" rule, `FINE_TICK` for fine ones:
  the kernel's file clock lags by up to a tick), so any later change, an
  in-place edit of the same size in the same second included, gives the
  file another ctime.  A folder's signature never vouches for the files
  in it: an in-place edit does not touch its folder.
* **Names: a folder's signature, settled.**  A shard folder whose inode,
  mtime and ctime are those saved (and were settled when it was listed)
  holds the same names: creating, removing or renaming a file changes
  them.  Only then is the folder not listed again; each file is still
  checked by its own signature.
* **No secrets.**  A row is a record file's content, which git may see
  anyway: a record with secret fields is saved without them, marked, and
  its side file is read when it is taken (the side-file protocol replaces
  the record file whenever its secrets change, so an unchanged record file
  has the same secrets; an unmarked row has none).  A snapshot made under
  another declaration of the type's secret fields is ignored.
* **Never wrong data.**  A snapshot this store did not write is ignored
  whole and rebuilt: its HMAC (SHA-256, with the key) fails when it is
  torn, truncated, edited or planted by anyone who cannot read the key
  (which could as well rewrite the records), and one of another format
  version, another store folder (copied with the store and its key), or
  another type is ignored too.  Within a signed one, a row that is not
  what this module writes (a name outside the shard, a document whose id
  belongs elsewhere, a field of the wrong type) is ignored and its file
  read.
* **Written atomically, best effort.**  A temp file renamed over the old
  snapshot (no fsync: a torn one fails its checksum); a store that cannot
  write it (read-only, no space) opens and reads as before.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Iterable
from stat import S_ISREG
from typing import Any, Final

import orjson

from . import encoding, files, paths
from .codec import Codec
from .errors import CorruptRecord
from .layout import SNAPSHOT_DIR, SNAPSHOT_KEY
from .reader import Entry, Reader
from .records import RecordFiles

LOG = logging.getLogger(__name__)

VERSION: Final = 1
MAGIC: Final = b"gitpersist-snapshot"
FINE_TICK: Final = 100_000_000      # ns: well over the kernel's file clock tick (1-10 ms)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SHARD_RE = re.compile(r"[0-9a-f]{2}")

# [name, ino, mtime_ns, size, ctime_ns, checked, revision, document, text,
# (secret)]: the record file's; text is its bytes, or None when they are the
# document's canonical encoding (most files: parsing the documents with the
# snapshot and encoding them again costs half of parsing each one's text);
# a tenth item (True) marks a record whose side file holds secret fields.
Row = list[Any]


def settled(timestamp_ns: int, checked: int) -> bool:
    """True if a change after `checked` cannot leave `timestamp_ns` as it is."""
    tick = files.COARSE_TICK if timestamp_ns % 1_000_000 == 0 else FINE_TICK
    return timestamp_ns + tick <= checked


class Shard:
    """A shard folder's rows (by file name), and whether its listing holds."""

    def __init__(self, folder: list[Any], rows: dict[str, Row]) -> None:
        self.folder = folder        # [ino, mtime_ns, ctime_ns, listed]
        self.rows = rows

    def listed(self, stat: os.stat_result) -> bool:
        """True if the folder still holds just the names of the rows."""
        return self.folder == [stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, True]


class Snapshots:
    """The snapshots of the store whose files are `files`.  No lock: the
    cache calls it with its own lock held."""

    def __init__(self, files: RecordFiles, codec: Codec, reader: Reader) -> None:
        self._files = files
        self._codec = codec
        self._reader = reader
        self.writable = True        # False: never saved (a read-only store)

    # Types smaller than this are read in milliseconds: no snapshot.
    MIN_RECORDS = 1000

    def relpath(self, type: str) -> str:
        return f"{SNAPSHOT_DIR}/{type}.snap"

    def _key(self, make: bool) -> bytes:
        """The snapshots' key (made if missing and `make`; b"" if none)."""
        path = self._files.path(SNAPSHOT_KEY)
        found = files.read(path)
        if found is None and make:
            files.write_atomic(self._files.root, SNAPSHOT_KEY, os.urandom(32), fsync=False,
                               file_mode=0o600, dir_mode=self._files.dir_mode)
            found = files.read(path)        # another process's, if it made one meanwhile
        return b"" if found is None else found[0]

    @staticmethod
    def _signed(key: bytes, body: bytes | memoryview) -> bytes:
        return b"%s %d %s" % (MAGIC, VERSION, hmac.new(key, body, "sha256").hexdigest().encode())

    # -- loading -------------------------------------------------------------

    def load(self, type: str) -> dict[str, Shard] | None:
        """The type's snapshot by shard name; None if there is none that
        holds (see the module docstring), which is only logged."""
        relpath = self.relpath(type)
        try:
            found = files.read(self._files.path(relpath))
            if found is None:
                return None
            return self._parse(type, found[0], self._key(False))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            LOG.info("%s: snapshot ignored (%s: %s)", self._files.path(relpath),
                     exc.__class__.__name__, exc)
            return None

    def _parse(self, type: str, data: bytes, key: bytes) -> dict[str, Shard]:
        end = data.find(b"\n")
        body = memoryview(data)[end + 1:]   # not a copy of 50 MB
        if not key or end < 0 or not hmac.compare_digest(data[:end], self._signed(key, body)):
            raise ValueError("not a snapshot of this version signed with the key beside it")
        snapshot = orjson.loads(body)
        if snapshot["type"] != type or snapshot["store"] != self._identity() \
                or snapshot["secret_fields"] != sorted(self._codec.names(type)):
            raise ValueError("made for another type, store folder or declaration")
        shards = {}
        for name, (folder, rows) in snapshot["shards"].items():
            if not _SHARD_RE.fullmatch(name):
                raise ValueError(f"shard {name!r}")
            shards[name] = Shard(folder, {row[0]: row for row in rows})
        return shards

    def restore(self, shard: Shard | None, relfolder: str, folder: str,
                listing: Callable[[], Iterable[tuple[str, str]]]
                ) -> tuple[list[Entry], list[tuple[str, str]]]:
        """The entries of the shard folder's record files whose signature
        is the saved one, and (relpath, path) of the other files, to read.
        `listing` lists the folder when its names are not known."""
        if shard is None:
            return [], list(listing())
        kind, base = relfolder.split("/", 1)[0], relfolder + "/"
        entries, others = [], []
        try:
            fd = os.open(folder, _DIR_FLAGS)
        except OSError:
            return [], list(listing())
        try:
            if shard.listed(os.fstat(fd)):
                for name, row in shard.rows.items():
                    entry = self._entry(kind, base + name, row, fd, name)
                    if entry is not None:
                        entries.append(entry)
                    elif paths.is_record_name(name):
                        others.append((base + name, f"{folder}/{name}"))
            else:
                for relpath, path in listing():
                    saved = shard.rows.get(relpath[len(base):])
                    entry = None if saved is None else self._entry(
                        kind, relpath, saved, fd, relpath[len(base):])
                    if entry is not None:
                        entries.append(entry)
                    else:
                        others.append((relpath, path))
        finally:
            os.close(fd)
        return entries, others

    def _entry(self, kind: str, relpath: str, row: Row, fd: int, name: str) -> Entry | None:
        """The entry of `row` if its file has the saved signature now."""
        try:
            _, ino, mtime, size, ctime, checked, revision, document, text, *secrets = row
            stat = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.st_ino != ino or stat.st_mtime_ns != mtime or stat.st_size != size \
                    or stat.st_ctime_ns != ctime or not S_ISREG(stat.st_mode) \
                    or type(revision) is not str or type(checked) is not int:
                return None
            if text is None:
                data = encoding.canonical(document)
            else:
                data = text.encode()
                if orjson.loads(data) != document:
                    return None
            if type(document) is not dict or not paths.is_path_of(relpath, kind,
                                                                  document["id"]):
                return None
            entry = Entry(relpath, document, data, revision, (ino, mtime, size), checked)
            return self._reader.with_secrets(entry) if secrets == [True] else entry
        except (OSError, ValueError, TypeError, KeyError, AttributeError, CorruptRecord):
            return None

    # -- saving --------------------------------------------------------------

    def save(self, type: str, entries: Collection[Entry]) -> bool:
        """Save the type's snapshot from `entries` (the cache's, complete);
        False if not saved (a small type, a read-only store; a failure is
        logged)."""
        if not self.writable or len(entries) < self.MIN_RECORDS:
            return False
        try:
            self._write(type, entries)
        except OSError as exc:
            LOG.info("%s: snapshot not saved: %s", self._files.path(self.relpath(type)),
                     exc.strerror or exc)
            return False
        return True

    def _write(self, type: str, entries: Iterable[Entry]) -> None:
        names = self._codec.names(type)
        by_shard: dict[str, list[Row]] = {}
        for entry in entries:
            row = self._row(entry, bool(names & entry.document.keys()))
            if row is not None:
                by_shard.setdefault(entry.relpath.split("/", 2)[1], []).append(row)
        shards = {}
        for relfolder, folder in self._files.shards(type):
            shard = relfolder.rsplit("/", 1)[1]
            rows = by_shard.get(shard, [])
            shards[shard] = [self._folder(folder, {row[0] for row in rows}), rows]
        body = orjson.dumps({"type": type, "store": self._identity(),
                             "secret_fields": sorted(names), "shards": shards})
        data = self._signed(self._key(True), body) + b"\n" + body
        files.write_atomic(self._files.root, self.relpath(type), data, fsync=False,
                           file_mode=self._files.file_mode, dir_mode=self._files.dir_mode)

    def _row(self, entry: Entry, secrets: bool) -> Row | None:
        """The row of `entry` (`secrets`: it has secret fields), if its file
        is still what was read and had settled before it was read."""
        try:
            stat = os.lstat(self._files.path(entry.relpath))
        except OSError:
            return None
        if files.signature(stat) != entry.signature or not settled(stat.st_ctime_ns,
                                                                   entry.checked):
            return None
        name, document, data, revision = (entry.relpath.rsplit("/", 1)[1], entry.document,
                                          entry.data, entry.revision)
        try:
            if secrets:     # the record file's part, if it is what the file holds
                document, hidden = self._codec.split(entry.relpath.split("/", 1)[0], document)
                data = encoding.canonical(document)
                revision = encoding.revision_of(data)
                if self._codec.revision(revision, hidden) != entry.revision:
                    return None
            canonical = encoding.canonical(document) == data
        except TypeError:
            return None
        return [name, stat.st_ino, stat.st_mtime_ns, stat.st_size, stat.st_ctime_ns,
                entry.checked, revision, document, None if canonical else data.decode(),
                *([True] if secrets else [])]

    @staticmethod
    def _folder(folder: str, rows: set[str]) -> list[Any]:
        """[ino, mtime_ns, ctime_ns, listed]: listed if it holds just `rows`
        and had settled when listed."""
        checked = time.time_ns()
        try:
            stat = os.lstat(folder)
            listed = {entry.name for entry in os.scandir(folder)} == rows
        except OSError:
            return [0, 0, 0, False]
        return [stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns,
                listed and settled(stat.st_ctime_ns, checked)]

    def _identity(self) -> list[int]:
        """The store folder's (device, inode): a snapshot copied with the
        store to another folder is not this store's."""
        stat = os.stat(self._files.root)
        return [stat.st_dev, stat.st_ino]
