"""The conflicts syncs decided, kept until someone settles them.

Every `Conflict` a sync reports is also added here, to the store's local
state file ``.gitpersist/conflicts.json`` (`CONFLICTS_FILE`): in the meta
folder, which the store's ``.gitignore`` keeps out of git, so it is never
committed or pushed.  ``gitpersist conflicts`` lists the unsettled ones;
``gitpersist resolve`` (`gitpersist.settle`) writes the chosen record and
marks that record's conflicts settled.

Guarantees (tests: ``tests/test_sync_ledger.py``, ``tests/test_settle.py``):

* The file is written atomically, mode 0600 whatever the store's
  ``file_mode`` (it quotes record values), under the store's write lock
  (a sync's integration, a resolve), so no addition is lost.
* It holds what the record files hold and nothing more: the values of the
  public fields git already has.  Secret fields live in side files and
  never reach a merge, so never this file either.
* A conflict is added once (its key: file, field and both commits), and
  stays listed until settled.  Settled entries are kept for reference, the
  oldest dropped past `MAX_SETTLED`.
* An unreadable file raises `StoreError` naming it; a sync that cannot add
  to it still succeeds (the report has every conflict) and logs a warning.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from typing import Any

import orjson

from .. import files
from ..errors import StoreError
from ..layout import CONFLICTS_FILE
from .report import Conflict

Recorded = dict[str, Any]
"""One conflict as the file keeps it (JSON): `Conflict`'s fields, plus
``key``, ``remote``, ``merge_commit``, ``time`` and ``settled`` (None, or
{"how", "time", "revision"})."""


def key_of(conflict: Conflict) -> str:
    text = "\0".join([conflict.relpath, *conflict.field, conflict.winner_commit,
                      conflict.loser_commit])
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def as_recorded(conflict: Conflict, *, remote: str, merge_commit: str | None) -> Recorded:
    return {"key": key_of(conflict), "relpath": conflict.relpath, "type": conflict.type,
            "id": conflict.id, "field": list(conflict.field), "winner": conflict.winner,
            "base_value": conflict.base_value, "local_value": conflict.local_value,
            "remote_value": conflict.remote_value, "local_commit": conflict.local_commit,
            "remote_commit": conflict.remote_commit, "base_commit": conflict.base_commit,
            "winner_revision": conflict.winner_revision,
            "loser_revision": conflict.loser_revision, "remote": remote,
            "merge_commit": merge_commit, "time": int(time.time()), "settled": None}


class Ledger:
    """The conflicts file of the store at `root` (see the module docstring)."""

    MAX_SETTLED = 1000
    MODE = 0o600

    def __init__(self, root: str, *, fsync: bool = True, dir_mode: int = 0o700) -> None:
        self.root = root
        self.path = os.path.join(root, *CONFLICTS_FILE.split("/"))
        self.fsync = fsync
        self.dir_mode = dir_mode

    def entries(self) -> list[Recorded]:
        """Every recorded conflict, oldest first."""
        try:
            with open(self.path, "rb") as file:
                found = orjson.loads(file.read())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StoreError(f"cannot read the conflicts file {self.path}: {exc} (move it "
                             "away to start a new one; the conflicts stay in git history)"
                             ) from None
        if not (isinstance(found, dict) and isinstance(found.get("conflicts"), list)
                and all(isinstance(e, dict) for e in found["conflicts"])):
            raise StoreError(f"the conflicts file {self.path} is not a gitpersist "
                             "conflicts file (move it away to start a new one)")
        return list(found["conflicts"])

    def unsettled(self, type: str | None = None, id: str | None = None) -> list[Recorded]:
        """The conflicts not settled yet (of one type, or one record)."""
        return [e for e in self.entries() if e.get("settled") is None
                and (type is None or e.get("type") == type) and (id is None or e.get("id") == id)]

    def add(self, conflicts: Sequence[Conflict], *, remote: str,
            merge_commit: str | None) -> None:
        """Keep `conflicts` (store's write lock held)."""
        if not conflicts:
            return
        entries = self.entries()
        known = {e.get("key") for e in entries}
        for conflict in conflicts:
            if key_of(conflict) not in known:
                entries.append(as_recorded(conflict, remote=remote, merge_commit=merge_commit))
                known.add(key_of(conflict))
        self._write(entries)

    def settle(self, type: str, id: str, *, how: str, revision: str | None) -> list[Recorded]:
        """Mark the unsettled conflicts of record `id` of `type` settled
        (store's write lock held); return them."""
        entries = self.entries()
        settled = []
        for entry in entries:
            if entry.get("settled") is None and (entry.get("type"), entry.get("id")) == (type, id):
                entry["settled"] = {"how": how, "time": int(time.time()), "revision": revision}
                settled.append(entry)
        if settled:
            self._write(entries)
        return settled

    def _write(self, entries: list[Recorded]) -> None:
        done = [i for i, e in enumerate(entries) if e.get("settled") is not None]
        drop = set(done[:max(0, len(done) - self.MAX_SETTLED)])
        kept = [e for i, e in enumerate(entries) if i not in drop]
        data = orjson.dumps({"conflicts": kept}, option=orjson.OPT_INDENT_2
                            | orjson.OPT_APPEND_NEWLINE)
        try:
            files.write_atomic(self.root, CONFLICTS_FILE, data, fsync=self.fsync,
                               file_mode=self.MODE, dir_mode=self.dir_mode)
        except OSError as exc:
            raise StoreError(f"cannot write the conflicts file {self.path}: "
                             f"{exc.strerror or exc}") from None
