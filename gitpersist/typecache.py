"""The cached records of one type: the entries read or written (by id),
the record files found broken and the folders that cannot be listed, and
equality indexes over the type's declared index keys.

Locking rule: none of its own; its owner (`gitpersist.cache.Cache`) holds
its lock around every call.

Guarantees (tests: ``tests/test_cache.py``):

* An index key function that fails on a record read from disk leaves that
  record out of that index, with a warning; `keys_of` names the index, so
  a write can be refused before anything is written.
* An index value that is no hashable value (a list, a dict) is filed by
  its canonical JSON bytes (`hashable`), so equal values meet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .codec import Document
from .errors import CorruptRecord, InvalidDocument, UnreadableFolder
from .reader import Entry
from .records import RecordFiles

LOG = logging.getLogger(__name__)

Keys = tuple[tuple[str, Any], ...]


class TypeCache:
    """Cached records of one type, plus equality indexes once complete."""

    def __init__(self, index_keys: Mapping[str, Callable[[Document], Any]]) -> None:
        self.entries: dict[str, Entry] = {}
        self.id_of_path: dict[str, str] = {}
        self.corrupt: dict[str, CorruptRecord] = {}     # by relpath
        self.unreadable: dict[str, UnreadableFolder] = {}    # folders, by relpath
        # relpath -> (signature, time.time_ns() before it was read)
        self.corrupt_signatures: dict[str, tuple[tuple[int, int, int], int]] = {}
        self.complete = False
        self.unsaved = 0        # entries added or removed since the snapshot was made
        self.index_keys = index_keys
        self.indexes: dict[str, dict[Any, set[str]]] = {name: {} for name in index_keys}

    def keys_of(self, document: Document, where: str) -> Keys:
        """(index name, the document's key) for each index; `InvalidDocument`
        names the index whose key function fails on it."""
        keys = []
        for name, key in self.index_keys.items():
            try:
                value = key(document)
                keys.append((name, value if value.__class__ is str else hashable(value)))
            except Exception as exc:
                raise InvalidDocument(f"{where}: index {name!r} cannot key it "
                                      f"({type(exc).__name__}: {exc})") from None
        return tuple(keys)

    def add(self, entry: Entry, keys: Keys | None = None) -> None:
        """Cache `entry`, filed under `keys` (computed if not given)."""
        id = entry.document["id"]
        if id in self.entries:
            self.discard(id)
        try:
            entry.keys = self.keys_of(entry.document, entry.relpath) if keys is None else keys
        except InvalidDocument as exc:
            LOG.warning("%s", exc)
            entry.keys = ()
        self.entries[id] = entry
        self.unsaved += 1
        self.id_of_path[entry.relpath] = id
        if self.corrupt:
            self.corrupt.pop(entry.relpath, None)
        for name, key in entry.keys:
            ids = self.indexes[name].get(key)
            if ids is None:
                self.indexes[name][key] = {id}
            else:
                ids.add(id)

    def broken(self, relpath: str, path: str, exc: CorruptRecord, checked: int) -> None:
        """`relpath` is broken as read at `checked` (time.time_ns() before)."""
        LOG.warning("skipping %s", exc)
        self.corrupt[relpath] = exc
        try:
            self.corrupt_signatures[relpath] = (RecordFiles.signature(path), checked)
        except OSError:
            self.corrupt_signatures.pop(relpath, None)

    def discard(self, id: str) -> Entry | None:
        entry = self.entries.pop(id, None)
        if entry is None:
            return None
        self.unsaved += 1
        del self.id_of_path[entry.relpath]
        for name, key in entry.keys:
            ids = self.indexes[name].get(key)
            if ids is not None:
                ids.discard(id)
        return entry


def hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value
