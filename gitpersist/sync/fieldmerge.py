"""The field rule of a sync: a three-way merge of a record, field by field.

`FieldMerge` is a `gitpersist.sync.merge.Resolver` placed before
`LaterChangeWins` (``merge="field"``, the default; ``merge="record"``
leaves it out).  It takes a record file both sides changed and merges the
two documents against their merge base (`merge3`):

* a field changed on one side only takes that side's value (added,
  changed or removed);
* a field changed on both sides to the same value takes it;
* objects (JSON dicts: cinderlib's ``metadata``, ``admin_metadata``,
  ``volume_type.extra_specs``, or any other) merge key by key by the same
  rules, at any depth; an object both sides added merges against an empty
  one;
* anything else changed on both sides to different values (a scalar, a
  list, an object against a non-object) is a *conflict* at that field's
  path: the side whose change of the record is later (the `LaterChangeWins`
  key: committer time, then blob id) gives the value, so both hosts reach
  the same bytes whichever one merges;
* an edit against a deletion is a conflict of the whole record (path
  ``()``), decided by the same key.

Cost: about 0.3 ms per record both sides changed (a cinderlib-sized
volume, most of it the canonical encoding's check of the merged record),
against ~25 us for the whole-record rule; a sync's git commands take
hundreds of milliseconds.

Every conflict is reported (`Conflict`, with the field path, the base,
local and remote values and the commits).  Record files that are not JSON
objects are left to the next resolver (the whole-record rule).  The record
files hold no secret fields (they live in side files), so neither do the
values a conflict reports.  Tests: ``tests/test_sync_fieldmerge.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .. import encoding
from ..errors import InvalidDocument
from .merge import LOCAL, REMOTE, Blobs, Both, Resolution, later_side
from .report import Conflict

ABSENT: Any = object()
"""A key missing from an object (in `merge3`'s values)."""
Path = tuple[str, ...]


@dataclass(frozen=True)
class Clash:
    """A field both sides changed to different values (`ABSENT`: removed)."""
    path: Path
    base: Any
    local: Any
    remote: Any


def merge3(base: Any, local: Any, remote: Any, winner: str, path: Path = ()) -> tuple[Any, list[Clash]]:
    """The three-way merge of `local` and `remote` against `base` (see the
    module docstring), and the clashes, in key order; `winner` (`LOCAL`
    or `REMOTE`) gives each clash's value.  Any of the three may be
    `ABSENT`; so may the result."""
    if _same(local, remote) or _same(remote, base):
        return local, []
    if _same(local, base):
        return remote, []
    if isinstance(local, dict) and isinstance(remote, dict) and (
            base is ABSENT or isinstance(base, dict)):
        old = {} if base is ABSENT else base
        merged, clashes = {}, []
        for key in sorted(local.keys() | remote.keys() | old.keys()):
            value, found = merge3(old.get(key, ABSENT), local.get(key, ABSENT),
                                  remote.get(key, ABSENT), winner, (*path, key))
            clashes += found
            if value is not ABSENT:
                merged[key] = value
        return merged, clashes
    return (local if winner == LOCAL else remote), [Clash(path, base, local, remote)]


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: Python's ``==`` takes ``1``, ``1.0`` and ``true`` for
    one value, which would let the two hosts keep different ones."""
    if a is ABSENT or b is ABSENT:
        return a is b
    if type(a) is not type(b):
        return False
    if not isinstance(a, dict | list):      # same plain type: == is exact
        return bool(a == b)
    # Containers may hide 1 against true deeper down: compare their bytes.
    return bool(orjson.dumps(a, option=orjson.OPT_SORT_KEYS)
                == orjson.dumps(b, option=orjson.OPT_SORT_KEYS))


class FieldMerge:
    """The field rule (see the module docstring), reading and writing blobs
    through `blobs`.  Decides every record file both sides changed whose
    versions are JSON objects; leaves the rest to the next resolver."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def resolve(self, both: Both) -> Resolution | None:
        if both.type is None:
            return None         # the store's own files: other rules
        documents = self._documents(both)
        if documents is None:
            return None
        base, local, remote = documents
        winner, local_commit, remote_commit = later_side(both)
        if local is ABSENT or remote is ABSENT:       # an edit against a deletion
            clashes = [Clash((), base, local, remote)]
            entry = both.local if winner == LOCAL else both.remote
            return Resolution(entry, tuple(self._conflicts(both, clashes, winner, local_commit,
                                                           remote_commit)))
        merged, clashes = merge3({} if base is ABSENT else base, local, remote, winner)
        try:
            data = encoding.dumps(merged, both.relpath)
        except InvalidDocument:
            return None
        entry = (0o100644, self.blobs.write_blob(data))
        return Resolution(entry, tuple(self._conflicts(both, clashes, winner, local_commit,
                                                       remote_commit)))

    def _documents(self, both: Both) -> tuple[Any, Any, Any] | None:
        """(base, local, remote) documents, `ABSENT` for a missing file;
        None if one is not a JSON object."""
        entries = (both.base, both.local, both.remote)
        contents = self.blobs.blobs(sorted({e[1] for e in entries if e is not None}))
        documents = []
        for entry in entries:
            if entry is None:
                documents.append(ABSENT)
                continue
            try:
                document = orjson.loads(contents[entry[1]])
            except (orjson.JSONDecodeError, KeyError):
                return None
            if not isinstance(document, dict):
                return None
            documents.append(document)
        return documents[0], documents[1], documents[2]

    @staticmethod
    def _conflicts(both: Both, clashes: list[Clash], winner: str, local_commit: str,
                   remote_commit: str) -> Iterator[Conflict]:
        for clash in clashes:
            base, local, remote = (None if v is ABSENT else v
                                   for v in (clash.base, clash.local, clash.remote))
            yield both.conflict(winner, local_commit, remote_commit, field=clash.path,
                                values=(base, local, remote))


__all__ = ["ABSENT", "Clash", "FieldMerge", "LOCAL", "REMOTE", "merge3"]
