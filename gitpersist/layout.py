"""Where a store keeps what it keeps: the on-disk names every layer shares.

A store folder holds one folder per type (``<type>/<shard>/<id>.json``, see
`gitpersist.paths`) and the meta folder ``.gitpersist``:

* ``format.json``: the store's format version and its declared secret
  fields (committed with the records);
* ``.gitignore``: keeps everything else in the meta folder out of git;
* ``write.lock``: the writers' lock file;
* ``write.holder``: who holds it, or held it last (pid, host, since when);
* ``changes``: the change log every process's cache follows;
* ``splitting``: the types whose records a declaration that grew is still
  moving secret fields out of (the next open finishes it, before it commits);
* ``conflicts.json``: the conflicts syncs decided, until settled
  (`gitpersist.sync.ledger`);
* ``secrets/``: the side files holding secret fields, and the store's key;
* ``snapshot/``: the cache's snapshot of each type (`gitpersist.snapshot`),
  local state that holds no secret field.

Guarantees: this module imports only `paths` (a leaf), and
`is_store_file` is the one rule for "is this path one of the store's own
committed files" (the history's recovery, the sync's merge and fsck ask it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from . import paths

FORMAT_VERSION: Final = 1
META_DIR: Final = ".gitpersist"
FORMAT_FILE: Final = f"{META_DIR}/format.json"
GITIGNORE_FILE: Final = f"{META_DIR}/.gitignore"
LOCK_FILE: Final = f"{META_DIR}/write.lock"
HOLDER_FILE: Final = f"{META_DIR}/write.holder"
CHANGES_FILE: Final = f"{META_DIR}/changes"
SPLITTING_FILE: Final = f"{META_DIR}/splitting"
CONFLICTS_FILE: Final = f"{META_DIR}/conflicts.json"
SECRETS_DIR: Final = f"{META_DIR}/secrets"
KEY_FILE: Final = f"{SECRETS_DIR}/key"
SNAPSHOT_DIR: Final = f"{META_DIR}/snapshot"
SNAPSHOT_KEY: Final = f"{SNAPSHOT_DIR}/key"
# What the meta folder keeps out of git: everything but the format file.
META_GITIGNORE: Final = b"*\n!.gitignore\n!format.json\n"
META_FILES: Final = frozenset([FORMAT_FILE, GITIGNORE_FILE])
"""Store files committed besides the records."""
META_NAMES: Final = frozenset(path.rsplit("/", 1)[1] for path in (
    FORMAT_FILE, GITIGNORE_FILE, LOCK_FILE, HOLDER_FILE, CHANGES_FILE, SPLITTING_FILE,
    CONFLICTS_FILE))
"""The files of the meta folder (besides the secrets folder)."""


@dataclass(frozen=True)
class Change:
    """One store file change handed to the history: `data` is None for a
    deletion; `revision` is the git blob id of `data`."""
    relpath: str
    data: bytes | None
    revision: str | None


def is_store_file(relpath: str) -> bool:
    """True for a path (below the store root) the history commits: a record
    file or one of `META_FILES`."""
    return relpath in META_FILES or paths.split_record_path(relpath) is not None


def side_path(relpath: str) -> str:
    """The side file holding the secret fields of the record at `relpath`."""
    return f"{SECRETS_DIR}/{relpath}"
