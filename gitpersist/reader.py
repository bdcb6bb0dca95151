"""What is on disk now: a record file and its side file, read once.

`Reader.read` gives the cache its entries; `Reader.current` gives a write
what it needs to know of the record it replaces (the revision to check
``expect=`` against, the old document for the commit message, the side
file to stage the new secrets in), from one read of each file.  No state,
no lock: a read of a file being replaced sees the old or the new version
(renames are atomic), and the side file keeps the secrets of both versions
while the record file is replaced (`gitpersist.sidefiles`).  Tests:
``tests/test_reader.py``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from . import encoding, files, paths, secret
from .changelog import UNKNOWN
from .codec import Codec, Document
from .errors import CorruptRecord
from .records import RecordFiles
from .sidefiles import SideFiles


@dataclass(slots=True)      # no __dict__: 100k of them cached, and tracked by the collector
class Entry:
    """A record as the cache keeps it: `data` and `revision` are those of
    the whole record (secret fields included); `signature` tells a later
    version of its file apart without reading it."""
    relpath: str
    document: Document
    data: bytes
    revision: str
    signature: tuple[int, int, int]
    checked: int = 0        # time.time_ns() before the file was read
    keys: tuple[tuple[str, Any], ...] = ()      # (index name, key) it is filed under

    def racy(self) -> bool:
        return files.racy(self.signature, self.checked)


class Reader:
    """Reads the records of the store whose files are `files`."""

    def __init__(self, files: RecordFiles, sides: SideFiles, codec: Codec) -> None:
        self._files = files
        self._sides = sides
        self._codec = codec

    def read(self, relpath: str, path: str | None = None, sides: bool | None = None
             ) -> Entry | None:
        """The record at `relpath` with its secret fields, or None; a broken
        record or side file raises `CorruptRecord` naming it.  `path`: the
        file as a listing found it (`RecordFiles.read`).  `sides`:
        whether the type may have side files, if the caller knows."""
        checked = time.time_ns()
        found = self._files.read(relpath, path)
        path = path or self._files.path(relpath)
        if found is None:
            return None
        type = relpath.split("/", 1)[0]
        side = None
        if self._codec.names(type) and (self._sides.may_have(type) if sides is None else sides):
            side = self._sides.read(relpath)
        entry = _decode(self._codec, relpath, path, found, side)
        entry.checked = checked
        return entry

    def for_write(self, relpath: str, needed: bool) -> OnDisk | None:
        """The record at `relpath` as a write finds it, read once, when the
        write needs it: when the writer says it is `needed` (to check
        ``expect=``, to describe the change, to stage the secrets it has),
        or when the type may have side files to keep.  Read under the write
        lock from the file, not the cache: another process may have written
        it a moment ago and its event may not have arrived yet."""
        type = relpath.split("/", 1)[0]
        if not needed and not (self._codec.names(type) and self._sides.may_have(type)):
            return None
        return self.current(relpath)

    def with_secrets(self, public: Entry) -> Entry:
        """`public`, a record file's entry (its revision the file's), with
        the secret fields its side file holds for it; a broken side file
        raises `CorruptRecord` naming it."""
        return _merge(self._codec, public, self._sides.read(public.relpath),
                      self._files.path(public.relpath))

    def revision(self, relpath: str) -> str | None:
        """The revision of the store file at `relpath` on disk now (None:
        absent; `UNKNOWN`: not a record, or broken), for the change log and
        subscribers (`gitpersist.changefeed.Subscribers`)."""
        if paths.split_record_path(relpath) is None:
            return UNKNOWN
        try:
            entry = self.read(relpath)
        except CorruptRecord:
            return UNKNOWN
        return None if entry is None else entry.revision

    def current(self, relpath: str) -> OnDisk:
        """The record at `relpath` as a write finds it (see `OnDisk`)."""
        path = self._files.path(relpath)
        try:
            found = files.read_below(self._files.root, relpath)
        except OSError as exc:      # a folder or symlink in its place: overwritten
            return OnDisk(self._codec, relpath, path, None, None, CorruptRecord(path, str(exc)))
        side, error = None, None
        type = relpath.split("/", 1)[0]
        if found is not None and self._codec.names(type) and self._sides.may_have(type):
            try:
                side = self._sides.read(relpath)
            except CorruptRecord as exc:
                error = exc
        return OnDisk(self._codec, relpath, path, found, side, error)


def _decode(codec: Codec, relpath: str, path: str, found: tuple[bytes, os.stat_result],
            side: dict[str, Any] | None) -> Entry:
    """The entry of a record file's content and its side file."""
    data, stat = found
    return _merge(codec, Entry(relpath, encoding.loads(data, path), data,
                               encoding.revision_of(data), files.signature(stat)), side, path)


def _merge(codec: Codec, entry: Entry, side: dict[str, Any] | None, path: str) -> Entry:
    """`entry` (a record file's) with the secret fields `side` holds for it."""
    names = codec.names(entry.relpath.split("/", 1)[0])
    found = secret.entry_for(side, entry.revision)
    hidden = {k: v for k, v in (found or {}).get("fields", {}).items() if k in names}
    if hidden:
        entry.document = {**entry.document, **hidden}
        entry.data = encoding.dumps(entry.document, path)
        entry.revision = codec.revision(entry.revision, hidden)
    return entry


class OnDisk:
    """A record file and its side file as read by `Reader.current`."""

    def __init__(self, codec: Codec, relpath: str, path: str,
                 found: tuple[bytes, os.stat_result] | None,
                 side: dict[str, Any] | None, error: CorruptRecord | None) -> None:
        self._codec = codec
        self.relpath, self.path = relpath, path
        self.found, self.side, self._error = found, side, error

    @cached_property
    def public_revision(self) -> str | None:
        """The record file's blob id (None: no file)."""
        return None if self.found is None else encoding.revision_of(self.found[0])

    @property
    def content(self) -> bytes | None | Literal[False]:
        """The record file's bytes; None if there is none, False if it could
        not be read (a folder or a symlink in its place)."""
        if self.found is not None:
            return self.found[0]
        return False if self._error is not None else None

    @property
    def document(self) -> Document | None:
        """The whole record's document (None: absent or broken)."""
        return None if self.entry is None else self.entry.document

    @cached_property
    def entry(self) -> Entry | None:
        """The whole record; None if absent or broken (a broken record may
        always be overwritten)."""
        if self.found is None or self._error is not None:
            return None
        try:
            return _decode(self._codec, self.relpath, self.path, self.found, self.side)
        except CorruptRecord:
            return None
