"""What a sync takes from a remote: only the store's own files, checked.

A remote is untrusted: anyone with push access writes it.  `check` looks at
every entry the remote's side changed since the merge base (the whole tree
for unrelated histories) before anything is decided, written or moved, and
refuses with `SyncError` naming the path and the commit whatever the store
does not own.  Below the store's path a received entry must be:

* a record file ``<type>/<shard>/<name>.json`` whose every component is one
  the store makes (`gitpersist.paths.split_record_path`: never ``..``, a dot
  file or any other name), as a regular blob of mode 100644;
* the format file, mode 100644, that parses as one read at open does
  (`gitpersist.formatfile.parse`: JSON object, a format version this
  gitpersist understands, well-formed secret fields); a newer version
  refuses the sync, not every later open;
* the meta folder's ``.gitignore`` exactly as the store writes it: the
  store authors it, a received one never loosens it (nor deletes it).

Anything else is refused: the secrets folder, the lock file, the change
log, symlinks at any depth (the store folder itself or a folder above it
included), gitlinks, executable modes (a record received with mode 100755
is refused, not normalised: no host of this store writes one), unknown
names.  Deletions count too: a remote removing a file under the store
that is not a record (one committed there by mistake, say the secrets
folder) is refused, since git would delete it here (the key); remove it
from this host's history the same way (``git rm --cached``) and sync.  In an ops repository the files outside the store follow git's own
rules; for a store at the root of its repository "below the store's path"
is the meta folder and every folder named like a type (a file such as
``README`` beside them is git's).

`keep_declarations` makes the secret declarations only grow whatever the
remote did: a received format file that dropped fields declared here (or a
deleted one) is replaced in the merge by one declaring both, so the merge
re-adds them (and the push sends them back).

Tests: ``tests/test_sync_hostile.py`` (crafted commits pushed to a bare
remote, one per item of issue 13, and a property test of hostile entries).
"""

from __future__ import annotations

from .. import formatfile, paths
from ..errors import FormatError, SyncError
from ..layout import FORMAT_FILE, GITIGNORE_FILE, META_DIR, META_GITIGNORE
from .merge import Blobs
from .plumbing import Diff, Entry

RECORD_MODE = 0o100644
_KINDS = {0o120000: "a symlink", 0o160000: "a gitlink (submodule)",
          0o100755: "an executable file (mode 100755)", 0o040000: "a folder"}
_BAD_NAMES = frozenset(["", ".", ".."])


def check(theirs: Diff, *, prefix: str, commit: str, remote: str, blobs: Blobs) -> None:
    """Refuse (`SyncError`) the remote's changes `theirs` (work-tree path ->
    (before, after), the diff of `commit` since the merge base) unless all
    those below the store's path `prefix` are store files the store would
    write (see the module docstring)."""
    checked: dict[str, Entry] = {}
    for path in sorted(theirs):
        after = theirs[path][1]
        problem = _problem(path, prefix, after)
        if problem is not None:
            raise SyncError(f"sync with remote {remote!r}: refused {path} in commit {commit}: "
                            f"{problem}; nothing was changed here (the store takes only its "
                            "record files and format file from a remote)")
        if after is not None and path in (prefix + FORMAT_FILE, prefix + GITIGNORE_FILE):
            checked[path] = after
    contents = blobs.blobs(sorted({entry[1] for entry in checked.values()}))
    for path, entry in checked.items():
        data = contents[entry[1]]
        try:
            if path.endswith(FORMAT_FILE):
                formatfile.parse(data, f"{path} in commit {commit}")
            elif data != META_GITIGNORE:
                raise FormatError(f"{path} in commit {commit}: not the .gitignore the store "
                                  "writes (it would let secrets or the lock file into git)")
        except FormatError as exc:
            raise SyncError(f"sync with remote {remote!r}: refused {exc}; nothing was "
                            "changed here") from None


def _problem(path: str, prefix: str, after: Entry | None) -> str | None:
    """Why the remote's entry `after` at `path` is refused; None if it is
    accepted (or git's to handle)."""
    if prefix and (path == prefix[:-1] or prefix.startswith(path + "/")):
        return ("it replaces the store folder or a folder above it"
                + (f" with {_KINDS.get(after[0], 'a file')}" if after else ""))
    if not path.startswith(prefix):
        return None
    relpath = path[len(prefix):]
    parts = relpath.split("/")
    if not prefix and not _below_root_store(parts, after):
        return None
    if any(part in _BAD_NAMES or part.lower() == ".git" for part in parts):
        return "a name that leaves its folder ('..', '.', '.git' or empty)"
    if after is not None and after[0] != RECORD_MODE:
        return f"{_KINDS.get(after[0], f'mode {after[0]:o}')}, not a regular file (100644)"
    if relpath == GITIGNORE_FILE and after is None:
        return "it deletes the store's .gitignore (secrets would show to git)"
    if relpath != FORMAT_FILE and relpath != GITIGNORE_FILE \
            and paths.split_record_path(relpath) is None:
        if parts[0].lower() == META_DIR:
            return "the store's meta folder holds no other committed file (secrets, locks)"
        return "not a record file name the store makes (<type>/<shard>/<name>.json)"
    return None


def _below_root_store(parts: list[str], after: Entry | None) -> bool:
    """For a store at the root of its repository: whether the entry at
    `parts` is the store's (in the meta folder or a folder named like a
    type, or a symlink named like one), not a file of git's beside them."""
    first = parts[0]
    if first.lower() == META_DIR or first in _BAD_NAMES or first.lower() == ".git":
        return True
    if not paths.is_type(first):
        return False
    return len(parts) > 1 or (after is not None and after[0] == 0o120000)


def keep_declarations(decided: dict[str, Entry | None], local: dict[str, Entry | None], *,
                      prefix: str, blobs: Blobs) -> bool:
    """Make the merge's format file (in `decided`, as `gitpersist.sync.merge`
    decided it) declare every secret field the local one (in `local`)
    declares: a remote that dropped some, or deleted the file, gets them
    back.  Whether `decided` changed (then the merge is a merge commit,
    never a fast-forward to the remote's tree)."""
    path = prefix + FORMAT_FILE
    mine, chosen = local.get(path), decided.get(path)
    if path not in decided or mine is None or chosen == mine:
        return False
    if chosen is None:
        decided[path] = mine
        return True
    contents = blobs.blobs(sorted({mine[1], chosen[1]}))
    theirs = formatfile.parse(contents[chosen[1]], path)
    ours = formatfile.declared_secrets(formatfile.parse(contents[mine[1]], path))
    declared = formatfile.declared_secrets(theirs)
    if all(names <= declared.get(type, frozenset()) for type, names in ours.items()):
        return False
    decided[path] = (RECORD_MODE, blobs.write_blob(formatfile.render(theirs, ours)))
    return True
