"""Building a commit: changed store paths on top of HEAD, in one commit.

`Committer.commit` turns relpath -> content (None: deleted) into one commit
on the branch HEAD names.  Guarantees:

* **Store paths only.**  The tree is HEAD's with the given paths (under the
  store's prefix) replaced: the user's own staged, unstaged and untracked
  work in the repository is never committed
  (``test_ops_repo.py::test_commits_hold_only_the_store_and_the_users_work_is_untouched``).
* **No empty commit.**  A change that leaves the tree as it was makes none
  (``test_history.py::test_rewriting_a_record_unchanged_makes_no_commit``).
* **Another git user's commit is kept.**  The branch moves by
  compare-and-swap (`refs.Refs.set_if_equals`); when it moved meanwhile the
  commit is rebuilt on top of the new HEAD
  (``test_history.py::test_a_commit_made_while_ours_is_built_is_kept``,
  ``test_ops_repo.py::test_a_user_commit_between_ours_keeps_both``).
* **Objects before the ref.**  The pack is written (`objects.write_pack`)
  before the ref moves, so ``git fsck`` stays clean; what a failed or empty
  attempt added is discarded.

`head_entries` and `differing` compare files with HEAD (recovery, and a
sync-mode write finding another process's change not committed).

Locking rule: no lock of its own.  Every method is called with the
history's git lock held (`History._git_lock`: GitPython, the object store);
`committed`, the history's callback after the ref moved, runs under it too
and takes the lock below it (`History._cond`), never one above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..errors import HistoryError
from ..messages import clean_message
from .objects import TREE_MODE, Entry, ObjectStore, Tree, nest, object_id
from .refs import Refs
from .repo import Author

ATTEMPTS = 50       # rebuilds on top of a HEAD that moved, before giving up


class Committer:
    """Commits of store paths on top of HEAD (see the module docstring):
    `objects` and `refs` are the history's; store paths are `prefix` +
    relpath; commits are by `author`; `committed(relpaths)` is told of each
    commit once the ref moved.  The git lock is held by every caller."""

    def __init__(self, objects: ObjectStore, refs: Refs, *, prefix: str, author: Author,
                 git_dir: str, committed: Callable[[Iterable[str]], None]) -> None:
        self.objects = objects
        self.refs = refs
        self.prefix = prefix
        self.author = author
        self.git_dir = git_dir
        self.committed = committed

    def commit(self, changes: Mapping[str, bytes | None], message: str) -> str | None:
        """Commit `changes` (relpath -> content, None = deleted) on top of
        HEAD; return the commit id, or None if the tree did not change."""
        try:
            return self._try_commit(changes, clean_message(message))
        finally:
            self.objects.discard()     # what a failed or empty attempt left

    def _try_commit(self, changes: Mapping[str, bytes | None], message: str) -> str | None:
        objects, refs = self.objects, self.refs
        blobs = {self.prefix + relpath: None if data is None else objects.add(b"blob", data)
                 for relpath, data in changes.items()}
        subject = message.split("\n", 1)[0]
        for _ in range(ATTEMPTS):
            ref = refs.head_ref()
            parent = refs.read_ref(ref)
            base = objects.commit_tree(parent) if parent else None
            tree = objects.apply(base, nest(blobs))
            if tree == base:
                return None
            if tree is None:
                tree = objects.write_tree(Tree.empty())
            commit = objects.write_commit(tree, [parent] if parent else [], self.author, message)
            objects.write_pack()
            entry = f"commit{'' if parent else ' (initial)'}: {subject}"
            if refs.set_if_equals(ref, parent, commit, entry, head=True):
                objects.remember_commit(commit, tree)
                self.committed(changes)
                return commit
        raise HistoryError(f"{self.git_dir}: HEAD kept moving; gave up committing")

    def head_entries(self, relpaths: Iterable[str]) -> dict[str, Entry | None]:
        """The (mode, blob id) of each store path in HEAD, None if absent."""
        head = self.refs.read_ref(self.refs.head_ref())
        tree = self.objects.commit_tree(head) if head else None
        found = {}
        for relpath in relpaths:
            entry = self.objects.lookup(tree, self.prefix + relpath)
            found[relpath] = None if entry is None or entry[0] == TREE_MODE else entry
        return found

    def differing(self, files: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
        """The `files` (relpath -> content, None: absent) whose content is
        not what HEAD holds, in the order given."""
        entries = self.head_entries(files)
        return {relpath: data for relpath, data in files.items()
                if _blob_id(data) != ((entry := entries[relpath]) and entry[1])}


def _blob_id(data: bytes | None) -> bytes | None:
    return None if data is None else object_id(b"blob", data)
