"""The side-file protocol: where a record's secret fields live on this host.

For a type with declared secret fields (`gitpersist.secret` explains the
declaration), the secret fields of record ``<type>/<shard>/<id>.json``
live in ``.gitpersist/secrets/<type>/<shard>/<id>.json``.  The order of
writes, the whole protocol, is in this class and nowhere else:

1. `stage`, before the record file: the side file gets the new secrets
   for the new record version, and keeps the entry of the version on disk;
2. the caller replaces the record file;
3. `settle`: the previous entry goes (the whole side file if the record has
   no secrets now).

A deletion removes the record file, then (`remove`) the side file.  So a
crash anywhere reads back the old record with its old secrets or the new
with the new; a side file left without its record is removed by `sweep`
at the next open.  Callers hold the store's write lock for every method
but `read`, `may_have` and `sweep` (which takes it); `SideFiles` keeps one piece of state, the set
of types known to have side files, which only grows.  Tests:
``tests/test_sidefiles.py``, ``tests/test_secrets.py``, ``tests/test_crash.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from . import files, paths, secret
from .codec import Codec, Prepared
from .errors import StoreError
from .layout import SECRETS_DIR, side_path
from .records import RecordFiles

LOG = logging.getLogger(__name__)


class SideFiles:
    """The side files of the store whose files are `files`."""

    def __init__(self, files: RecordFiles, codec: Codec) -> None:
        self._files = files
        self.codec = codec
        self._types: set[str] = set()       # types known to have side files

    def may_have(self, type: str) -> bool:
        """False if no record of `type` has a side file: its secrets folder
        does not exist (one stat instead of a failed open per record).
        Asked after the record was read, and a side file is written before
        its record: a record with secrets is never read as one without."""
        if type in self._types:
            return True
        if os.path.isdir(self._files.path(f"{SECRETS_DIR}/{type}")):
            self._types.add(type)       # folders stay: remembered for good
            return True
        return False

    def read(self, relpath: str) -> dict[str, Any] | None:
        """The side file of the record at `relpath`, or None; a broken one
        raises `CorruptRecord` naming it."""
        found = self._files.read(side_path(relpath))
        return None if found is None else secret.read_side(found[0], self._files.path(
            side_path(relpath)))

    def stage(self, record: Prepared, side: dict[str, Any] | None,
              on_disk_revision: str | None) -> bool:
        """Step 1: write `record`'s secrets, keeping the entry of the record
        version on disk (`on_disk_revision`, its public revision; `side`,
        the side file now).  Both versions are named, also one without
        secrets (fields {}): a reader between the steps, or after a crash,
        gets the old record with the old secrets or the new with the new,
        never one with the other's.  True if a previous entry was kept."""
        if not self.codec.names(record.type) or (not record.hidden and side is None):
            return False        # no secrets before or after: nothing to stage
        previous = None
        if on_disk_revision is not None:
            entry = secret.entry_for(side, on_disk_revision) if side is not None else None
            previous = {"for": on_disk_revision, "fields": (entry or {}).get("fields", {})}
        self._files.write(side_path(record.relpath), secret.side_data(
            record.id, record.public_revision, record.hidden, previous, record.relpath))
        return previous is not None

    def settle(self, record: Prepared, kept: bool) -> None:
        """Step 3, after the record file: the previous secrets go."""
        if not self.codec.names(record.type):
            return
        if not record.hidden:
            if self.may_have(record.type):      # else none to remove (we hold the lock)
                self._files.remove(side_path(record.relpath))
        elif kept:
            self._files.write(side_path(record.relpath), secret.side_data(
                record.id, record.public_revision, record.hidden, None, record.relpath))

    def remove(self, relpath: str) -> None:
        """After the record file was removed: its side file goes."""
        if self.codec.names(relpath.split("/", 1)[0]):
            self._files.remove(side_path(relpath))

    def sweep(self, exclusive: Callable[[], AbstractContextManager[None]]) -> None:
        """Remove the side files whose record is gone (a deletion stopped
        between its two files): a record made later under the same id, by
        a sync say, must not inherit their secrets.  And the temp files of
        writers that are gone.  The write lock (`exclusive`) is taken only
        if there is something to remove, and a failure is logged: a
        read-only store still opens."""
        orphans = [relpath for relpath in self._relpaths() if not self._files.exists(relpath)]
        if not orphans:
            return
        try:
            with exclusive():
                for relpath in orphans:
                    if not self._files.exists(relpath):
                        self._files.remove(side_path(relpath))
        except (StoreError, OSError) as exc:
            LOG.warning("%s: secret fields of deleted records left in place: %s",
                        self._files.root, exc)

    def _relpaths(self) -> Iterator[str]:
        """The record relpaths that have a side file (and the relpaths of
        temp files beside them)."""
        for type in self.codec.fields:
            for shard, folder in self._files.shards(f"{SECRETS_DIR}/{type}"):
                for file in os.scandir(folder):
                    relpath = f"{type}/{os.path.basename(shard)}/{file.name}"
                    if (paths.split_record_path(relpath) is not None
                            or files.is_stale_temp(file.name, file.path)):
                        yield relpath

