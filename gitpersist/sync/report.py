"""What a sync reports: `SyncReport`, and a `Conflict` for each file both
sides changed differently."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Conflict:
    """One file changed differently on both sides, and how it was decided.
    Revisions are blob ids (as `Store.revision` gives), None for a deletion."""
    relpath: str                # below the store root
    type: str | None            # None for the store's own format files
    id: str | None
    winner: str                 # "local" or "remote"
    winner_revision: str | None
    loser_revision: str | None
    winner_commit: str          # the commit that made the winning version
    loser_commit: str


@dataclass
class SyncReport:
    """What one `Store.sync` did."""
    remote: str
    branch: str                         # the remote's branch, "refs/heads/main"
    before: str | None                  # local commit before the sync
    head: str | None                    # local commit after it
    remote_head: str | None             # the remote's commit integrated last
    received: list[str] = field(default_factory=list)   # store files taken from the remote
    conflicts: list[Conflict] = field(default_factory=list)
    pushed: bool = False
    attempts: int = 0

    def summary(self) -> str:
        """One line for logs and the command line."""
        parts = [f"{len(self.received)} file(s) received"]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s)")
        parts.append("pushed" if self.pushed else "nothing to push")
        return f"sync with {self.remote} ({self.branch}): {', '.join(parts)}"
