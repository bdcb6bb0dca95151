"""What a sync reports: `SyncReport`, and a `Conflict` for each field (or
whole file) both sides changed differently."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Conflict:
    """One field (or a whole file) changed differently on both sides, and
    how it was decided.  Revisions are blob ids (as `Store.revision` gives),
    None for a deletion."""
    #: below the store root
    relpath: str
    #: None for the store's own format files
    type: str | None
    id: str | None
    #: "local" or "remote"
    winner: str
    winner_revision: str | None
    loser_revision: str | None
    #: the commit that made the winning version
    winner_commit: str
    loser_commit: str
    #: the field's path, keys from the record's top: ("metadata", "k");
    #: () for the whole file (an edit against a deletion, the record rule)
    field: tuple[str, ...] = ()
    #: the field's values in the merge base and on each side, as the field
    #: rule read them (None: absent, or not read by the whole-file rule)
    base_value: Any = None
    local_value: Any = None
    remote_value: Any = None
    #: the merge base (None: unrelated histories)
    base_commit: str | None = None

    @property
    def local_commit(self) -> str:
        return self.winner_commit if self.winner == "local" else self.loser_commit

    @property
    def remote_commit(self) -> str:
        return self.loser_commit if self.winner == "local" else self.winner_commit

    @property
    def where(self) -> str:
        """The file and, for a field, its dotted path: ``volumes/ab/v1.json:
        metadata.k``."""
        return f"{self.relpath}: {field_path(self.field)}" if self.field else self.relpath


@dataclass
class SyncReport:
    """What one `Store.sync` did."""
    remote: str
    #: the remote's branch, "refs/heads/main"
    branch: str
    #: local commit before the sync
    before: str | None
    #: local commit after it
    head: str | None
    #: the remote's commit integrated last
    remote_head: str | None
    #: store files taken from the remote
    received: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    #: secret fields the remote declared that this host did not, by type:
    #: from now on each host keeps its own values of them (they no longer
    #: sync), and anyone who can push can declare one, so they are reported
    declared: dict[str, list[str]] = field(default_factory=dict)
    pushed: bool = False
    attempts: int = 0

    def summary(self) -> str:
        """One line for logs and the command line."""
        parts = [f"{len(self.received)} file(s) received"]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s)")
        if self.declared:
            parts.append("secret fields declared by the remote (kept on each host from now "
                         "on): " + ", ".join(f"{type}.{name}" for type, names
                                             in self.declared.items() for name in names))
        parts.append("pushed" if self.pushed else "nothing to push")
        return f"sync with {self.remote} ({self.branch}): {', '.join(parts)}"


def field_path(field: tuple[str, ...]) -> str:
    """A field's dotted path for messages and logs: a key that is not
    printable, or holds a dot, is quoted (keys come from remote records,
    which anyone with push access writes: a newline must not forge a line
    of a commit message)."""
    return ".".join(key if key.isprintable() and "." not in key and key
                    else json.dumps(key) for key in field)
