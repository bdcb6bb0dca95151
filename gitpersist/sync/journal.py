"""The note of a sync under way: what to finish if the process dies.

An integration writes the store files it received before it moves the
branch.  A crash in between would leave received files that look like
local changes: the next open's recovery would commit them as a change made
at the reopening, which would then outrank later remote changes (the later
change wins).  So the integration writes this note, naming the commit it
is applying, before the first received file, and removes it once the
branch has moved (`gitpersist.sync.integrate`); every git open of the store
finishes a noted merge before its recovery (`finish_interrupted`).

The note is ``gitpersist-sync-<hash of the store's prefix>.pending`` in the
git folder (a linked worktree's own; one per store of the repository),
written atomically (and durably, with the store's ``fsync``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from .. import files

if TYPE_CHECKING:
    from ..options import Options

LOG = logging.getLogger(__package__)


@dataclass(frozen=True)
class Note:
    """A sync was applying `commit` (as read: `Integrator.finish` checks
    it) of `remote`'s `branch`."""
    commit: object
    remote: str
    branch: str


class Journal:
    """The note file of the store below `prefix` in the repository whose
    git folder is `git_dir`."""

    def __init__(self, git_dir: str, prefix: str) -> None:
        digest = hashlib.sha1(prefix.encode("utf-8", "surrogateescape")).hexdigest()
        self.git_dir = git_dir
        self.path = os.path.join(git_dir, f"gitpersist-sync-{digest[:12]}.pending")

    def write(self, note: Note, options: Options) -> None:
        files.write_atomic(self.git_dir, os.path.basename(self.path), orjson.dumps(
            {"commit": note.commit, "remote": note.remote, "branch": note.branch}),
            fsync=options.fsync, file_mode=options.file_mode, dir_mode=options.dir_mode)

    def read(self, root: str) -> Note | None:
        """The note, None if there is none.  An unreadable one is logged
        (naming the store at `root`) and removed."""
        try:
            with open(self.path, "rb") as file:
                found = orjson.loads(file.read())
            commit, remote, branch = found["commit"], found["remote"], found["branch"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            LOG.warning("%s: unreadable note of an interrupted sync, ignored: %s", root, exc)
            self.remove()
            return None
        return Note(commit, str(remote), str(branch))

    def remove(self) -> None:
        files.unlink_quietly(self.path)
