"""What a sync takes from each side: the merge rule of store files.

`plan` compares the two sides' changes since their merge base (two
`Diff`s, work-tree path -> (before, after)) and decides each store file
(records and the format file; other files are git's to merge):

* changed on one side only, or to the same value on both: that value;
* changed on both sides to different values: the first of the `Resolver`s
  that takes the file decides.  The sync's chain is ``FormatUnion`` (the
  format file), ``FieldMerge`` (records that are JSON objects, field by
  field: `gitpersist.sync.fieldmerge`; left out with ``merge="record"``),
  then ``LaterChangeWins`` (everything).  A resolver that drops a side's
  change reports it as a `Conflict`.

Rules (the package docstring states them for users; each has a test in
``tests/test_sync_merge.py``):

* **Later change wins** (`LaterChangeWins`), as a whole record.  "Later" is
  the committer time of the newest commit on each side since the merge
  base that changed the file; equal times (git keeps seconds) go to the
  larger blob id, a deletion counting as the smallest (so on a tie the edit
  wins).  The keys of two different values always differ, so the rule is
  symmetric: both hosts pick the same winner whichever one merges.
* **The format file is never won** (`FormatUnion`): when both sides
  changed it, the merge declares every secret field either declares
  (`gitpersist.formatfile.merge`); not a conflict.

`plan` is a pure function: the commit facts come from the `last_change`
callable and resolvers get what they read through their own ports, so it
runs without git in the unit tests.  A rule is a `Resolver` placed before
`LaterChangeWins`: it gets the base, local and remote values (`Both`) and
returns a `Resolution`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import formatfile, paths
from ..layout import FORMAT_FILE
from .plumbing import Diff, Entry, store_relpath
from .report import Conflict

LOCAL, REMOTE = "local", "remote"
LastChange = Callable[[str, str], tuple[str, int]]
"""(side, path) -> (commit, committer time) of the newest commit of that
side (`LOCAL` or `REMOTE`) since the merge base that changed `path`."""


@dataclass(frozen=True)
class Both:
    """A store file changed on both sides since the merge base, to
    different values.  Values are (mode, blob id), None for absent;
    `base_commit` is the merge base (None: unrelated histories)."""
    path: str                       # in the work tree
    relpath: str                    # below the store root
    base: Entry | None
    local: Entry | None
    remote: Entry | None
    last_change: LastChange = field(repr=False, compare=False)
    base_commit: str | None = None

    @property
    def type(self) -> str | None:
        """The record's type; None for the store's own files."""
        split = paths.split_record_path(self.relpath)
        return split[0] if split else None

    def conflict(self, winner: str, local_commit: str, remote_commit: str, *,
                 field: tuple[str, ...] = (),
                 values: tuple[Any, Any, Any] = (None, None, None)) -> Conflict:
        """The `Conflict` reporting that `winner`'s value (`LOCAL` or
        `REMOTE`) was kept over the other's at `field` (() : the whole
        file); commits as `last_change` gave them; `values`: the field's
        (base, local, remote) values when the rule read them."""
        split = paths.split_record_path(self.relpath)
        type, id = split if split else (None, None)
        local_wins = winner == LOCAL
        kept, lost = (self.local, self.remote) if local_wins else (self.remote, self.local)
        return Conflict(
            self.relpath, type, id, winner,
            winner_revision=kept[1] if kept else None,
            loser_revision=lost[1] if lost else None,
            winner_commit=local_commit if local_wins else remote_commit,
            loser_commit=remote_commit if local_wins else local_commit,
            field=field, base_value=values[0], local_value=values[1],
            remote_value=values[2], base_commit=self.base_commit)


@dataclass(frozen=True)
class Resolution:
    """A resolver's decision: the file's value in the merge (None: absent),
    and the `Conflict`s to report where a side's change was dropped (one
    for a whole file, one per field for the field rule)."""
    entry: Entry | None
    conflicts: tuple[Conflict, ...] = ()

    @property
    def conflict(self) -> Conflict | None:
        """The first conflict (a whole-file rule reports at most one)."""
        return self.conflicts[0] if self.conflicts else None


class Resolver(Protocol):
    """Decides files changed on both sides (see the module docstring)."""

    def resolve(self, both: Both) -> Resolution | None:
        """The decision, or None to leave the file to the next resolver."""


class LaterChangeWins:
    """The later change wins, as a whole file; ties go to the larger blob
    id, a deletion counting as the smallest.  Decides every file."""

    def resolve(self, both: Both) -> Resolution:
        winner, local_commit, remote_commit = later_side(both)
        return Resolution(both.local if winner == LOCAL else both.remote,
                          (both.conflict(winner, local_commit, remote_commit),))


def later_side(both: Both) -> tuple[str, str, str]:
    """(the side whose change of the file is later, `LOCAL` or `REMOTE`;
    the local and the remote commit that last changed it): the key of
    `LaterChangeWins`, which the field rule's conflicts follow too."""
    local_commit, local_time = both.last_change(LOCAL, both.path)
    remote_commit, remote_time = both.last_change(REMOTE, both.path)
    local_wins = _key(local_time, both.local) > _key(remote_time, both.remote)
    return LOCAL if local_wins else REMOTE, local_commit, remote_commit


def _key(time: int, entry: Entry | None) -> tuple[int, str, int]:
    return (time, entry[1] if entry else "", entry[0] if entry else 0)


class Blobs(Protocol):
    """Reading and writing blobs (`gitpersist.sync.plumbing.LocalGit`)."""

    def blobs(self, ids: Sequence[str]) -> dict[str, bytes]: ...

    def write_blob(self, data: bytes) -> str: ...


class FormatUnion:
    """Both hosts changed the format file (each declared secret fields, or
    the first sync of two new stores): keep every declaration.  Takes only
    the format file, and only when both sides have one."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def resolve(self, both: Both) -> Resolution | None:
        if both.relpath != FORMAT_FILE or not both.local or not both.remote:
            return None
        contents = self.blobs.blobs([both.local[1], both.remote[1]])
        merged = formatfile.merge(contents[both.local[1]], contents[both.remote[1]])
        return Resolution((0o100644, self.blobs.write_blob(merged)))


@dataclass
class Plan:
    """What a merge does to the store's files (work-tree paths)."""
    decided: dict[str, Entry | None]        # every store file either side changed
    local: dict[str, Entry | None]          # the same files in the local commit
    conflicts: list[Conflict]               # in path order, then field order

    @property
    def changes(self) -> dict[str, Entry | None]:
        """The files the merge changes here: those decided otherwise than
        the local commit has them."""
        return {path: entry for path, entry in self.decided.items()
                if entry != self.local[path]}


def plan(ours: Diff, theirs: Diff, *, prefix: str, last_change: LastChange,
         resolvers: Sequence[Resolver], base: str | None = None) -> Plan:
    """Decide every store file (below `prefix`) that `ours` (the local
    side's changes since the merge base, the commit `base`) or `theirs`
    (the remote's) changes; see the module docstring."""
    result = Plan({}, {}, [])
    for path in sorted(ours.keys() | theirs.keys()):
        relpath = store_relpath(prefix, path)
        if relpath is None:
            continue
        mine = ours[path][1] if path in ours else theirs[path][0]
        yours = theirs[path][1] if path in theirs else ours[path][0]
        result.local[path] = mine
        if path not in theirs or mine == yours:
            result.decided[path] = mine
        elif path not in ours:
            result.decided[path] = yours
        else:
            both = Both(path, relpath, ours[path][0], mine, yours, last_change, base)
            resolution = _resolve(both, resolvers)
            result.decided[path] = resolution.entry
            result.conflicts.extend(resolution.conflicts)
    return result


def _resolve(both: Both, resolvers: Sequence[Resolver]) -> Resolution:
    for resolver in resolvers:
        resolution = resolver.resolve(both)
        if resolution is not None:
            return resolution
    raise ValueError(f"{both.relpath}: changed on both sides and no resolver decided it")
