"""Settling a conflict a sync decided: ``gitpersist resolve``.

A sync decides every conflict by itself (the later change wins, so hosts
converge without a person) and records it (`gitpersist.sync.ledger`).
`resolve` is how a person overrules or confirms that decision for one
record: it writes the version chosen

* ``"ours"``: the record as the local side of the merge had it,
* ``"theirs"``: as the remote side had it,
* ``"base"``: as it was in the merge base (absent there: deleted),
* or a document given (``--file``),

as one new commit (or none when the record is that already), and marks
every unsettled conflict of that record settled.  The versions are read
from git (the commits the conflict names), which never holds secret
fields: the record's secret fields stay as they are now, as with
`Store.restore`.  Tests: ``tests/test_settle.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import StoreError
from .store import Store
from .sync.ledger import Ledger, Recorded

TAKES = ("ours", "theirs", "base")
_COMMIT_OF = {"ours": "local_commit", "theirs": "remote_commit", "base": "base_commit"}


@dataclass(frozen=True)
class Settled:
    """What `resolve` did: the record's revision now (None: deleted),
    whether it changed (one commit) and the conflicts it settled."""
    type: str
    id: str
    took: str
    revision: str | None
    changed: bool
    conflicts: list[Recorded]


def resolve(store: Store, type: str, id: str, *, take: str | None = None,
            document: Mapping[str, Any] | None = None) -> Settled:
    """Settle the conflicts of record `id` of `type` with the version
    `take` names (`TAKES`) or with `document` (see the module docstring).
    `StoreError` when the record has no unsettled conflict, the store no
    history, or the version cannot be read."""
    if (take is None) == (document is None):
        raise StoreError("resolve: give either take= ('ours', 'theirs' or 'base') or a "
                         "document")
    if take is not None and take not in TAKES:
        raise StoreError(f"resolve: take={take!r} is not one of {', '.join(TAKES)}")
    if store.history is None:
        raise StoreError(f"store {store.root} has no git history: it has no conflicts "
                         "to resolve")
    ledger = Ledger(store.root, fsync=store.options.fsync, dir_mode=store.options.dir_mode)
    with store.exclusive():
        open_ = ledger.unsettled(type, id)
        if not open_:
            raise StoreError(f"{type} {id!r}: no unsettled conflict in {ledger.path} "
                             "(`gitpersist conflicts` lists them)")
        if take is not None:
            chosen, how = _version(store, type, id, open_[-1], take), take
        else:
            chosen, how = dict(document or {}), "file"
        before = store.revision(type, id)
        message = f"{type} {id}: conflict settled, took {how}"
        if chosen is None:
            store.delete(type, id, message=message)
            revision = None
        else:
            current = store.get(type, id) or {}
            names = store.secret_fields.get(type, [])
            if how != "file":
                # A version from git holds no secret of this host's: one
                # there came inline from a remote (anyone who can push), so
                # this host's own values are kept, whatever git says.
                for name in names:
                    chosen.pop(name, None)
            chosen.update({name: current[name] for name in names
                           if name in current and name not in chosen})
            revision = store.put(type, id, chosen, message=message)
        settled = ledger.settle(type, id, how=how, revision=revision)
    store.flush()
    return Settled(type, id, how, revision, revision != before, settled)


def _version(store: Store, type: str, id: str, entry: Recorded,
             take: str) -> dict[str, Any] | None:
    commit = entry.get(_COMMIT_OF[take])
    if commit is None:          # unrelated histories: no base, the record was absent
        return None
    if not isinstance(commit, str):
        raise StoreError(f"{type} {id!r}: the conflicts file names no {take} commit")
    return store.get_at(type, id, commit)
