"""The local git commands of a sync: the branch, commits, trees, diffs, blobs.

`LocalGit` runs them through the git layer's `GitRunner` (timeouts,
``GIT_TERMINAL_PROMPT=0``); a failure raises `SyncError`.  It holds the
repository's facts a sync needs (the git folder, the store's prefix in the
work tree, the commit identity) and no other state, so any thread may use
it.  Paths here are work-tree paths (the store's prefix included); a
store's relpath is `relpath` of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import SyncError
from ..history.objects import NULL_ID
from ..history.repo import Author, identity_env
from ..history.runner import GitRunner, last_lines
from ..layout import is_store_file

if TYPE_CHECKING:
    from ..history import History

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
Entry = tuple[int, str]             # (mode, blob id) of a file in a tree
Diff = dict[str, tuple[Entry | None, Entry | None]]     # path -> (before, after)


def store_relpath(prefix: str, path: str) -> str | None:
    """The store relpath of work-tree path `path` if it names one of the
    committed files of the store below `prefix`, else None."""
    if not path.startswith(prefix):
        return None
    relpath = path[len(prefix):]
    return relpath if is_store_file(relpath) else None


class LocalGit:
    """git commands in the repository of a store whose files lie below
    `prefix` in the work tree of `runner`; commits are made as `author`."""

    def __init__(self, runner: GitRunner, *, git_dir: str, prefix: str,
                 author: Author) -> None:
        self.runner = runner
        self.git_dir = git_dir
        self.prefix = prefix
        self.author = author

    @classmethod
    def of(cls, history: History, *, timeout: float) -> LocalGit:
        """The commands in `history`'s repository, each stopped after
        `timeout` seconds."""
        return cls(GitRunner(history.worktree, error=SyncError, timeout=timeout),
                   git_dir=history.git_dir, prefix=history.prefix, author=history.author)

    @property
    def worktree(self) -> str:
        return self.runner.worktree

    def is_store(self, path: str) -> bool:
        """True for a path of one of the store's committed files."""
        return store_relpath(self.prefix, path) is not None

    def relpath(self, path: str) -> str:
        """The store relpath of the store file at work-tree path `path`."""
        return path[len(self.prefix):]

    def branch_ref(self, remote: str) -> str:
        """The branch HEAD is on ("refs/heads/main"); a detached HEAD fails
        the sync with `remote`."""
        run = self.runner.run(["symbolic-ref", "-q", "HEAD"])
        ref = run.stdout.decode().strip()
        if run.returncode != 0 or not ref.startswith("refs/heads/"):
            raise SyncError(f"sync with {remote!r}: HEAD of {self.git_dir} is not on a "
                            "branch (detached); check out the branch to sync")
        return ref

    def rev(self, ref: str) -> str | None:
        """The commit `ref` names, None if none."""
        run = self.runner.run(["rev-parse", "-q", "--verify", f"{ref}^{{commit}}"])
        return run.stdout.decode().strip() or None if run.returncode == 0 else None

    def has_commit(self, commit: str) -> bool:
        return self.runner.run(["cat-file", "-e", f"{commit}^{{commit}}"]).returncode == 0

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        run = self.runner.run(["merge-base", "--is-ancestor", ancestor, commit])
        if run.returncode not in (0, 1):
            raise SyncError(f"git merge-base in {self.worktree}: {last_lines(run.stderr)}")
        return run.returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor, None for unrelated histories."""
        run = self.runner.run(["merge-base", a, b])
        if run.returncode not in (0, 1):
            raise SyncError(f"git merge-base in {self.worktree}: {last_lines(run.stderr)}")
        return run.stdout.decode().strip() or None

    def tree_of(self, commit: str) -> str:
        return self.runner.text(["rev-parse", f"{commit}^{{tree}}"]).strip()

    def diff(self, tree: str, commit: str) -> Diff:
        """Changed files between `tree` and `commit`: path -> (before, after)."""
        out = self.runner.output(["diff-tree", "-r", "-z", "--no-renames", tree, commit])
        fields = out.split(b"\0")
        found: Diff = {}
        for i in range(0, len(fields) - 1, 2):
            meta, path = fields[i], fields[i + 1].decode("utf-8", "surrogateescape")
            old_mode, new_mode, old_id, new_id, _ = meta.lstrip(b":").decode().split(" ")
            found[path] = (None if old_id == NULL_ID else (int(old_mode, 8), old_id),
                           None if new_id == NULL_ID else (int(new_mode, 8), new_id))
        return found

    def last_change(self, base: str | None, side: str, path: str) -> tuple[str, int]:
        """The newest commit of `side` since `base` that changed `path`,
        and its committer time."""
        out = self.runner.text(["log", "-1", "--format=%H %ct",
                                f"{base}..{side}" if base else side,
                                "--", f":(literal){path}"]).strip()
        if not out:     # cannot happen for a path the diff says changed
            raise SyncError(f"{self.git_dir}: no commit in {side} changed {path}")
        commit, stamp = out.split()
        return commit, int(stamp)

    def commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        args = ["commit-tree", "--no-gpg-sign", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.runner.text(args, input=message.encode(),
                                env=identity_env(self.author)).strip()

    def blobs(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The content of each blob, in one ``git cat-file --batch``."""
        if not ids:
            return {}
        out = self.runner.output(["cat-file", "--batch"],
                                 input="".join(f"{i}\n" for i in ids).encode())
        found, pos = {}, 0
        for blob_id in ids:
            end = out.index(b"\n", pos)
            header = out[pos:end].split(b" ")
            if len(header) != 3 or header[1] != b"blob":
                raise SyncError(f"{self.git_dir}: {blob_id} is not a blob "
                                f"({out[pos:end].decode(errors='replace')})")
            size = int(header[2])
            found[blob_id] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
        return found

    def write_blob(self, data: bytes) -> str:
        """Store `data` as a blob; its id."""
        return self.runner.text(["hash-object", "-w", "--stdin"], input=data).strip()
