"""The git remote a store syncs with: its URL, the branch, ``ls-remote``,
``fetch`` and ``push``.

* The URL is read from the repository's configuration when the `Remote` is
  made (a missing remote raises `ConfigError` naming the option) and again
  at each sync (`refresh`: it may have been changed with ``git remote
  set-url``).
* The remote's branch is the local branch's upstream when that is on this
  remote (``branch.<name>.remote`` and ``.merge``), else the branch of the
  same name (`upstream`).
* A fetch asks first (``git ls-remote``) and fetches only a commit not here
  yet, into ``refs/remotes/<remote>/<branch>``, without tags.
* A push is never forced; a push the remote refused because its branch
  moved returns False (fetch and merge again).
* Every network command is stopped after the owner's `network_timeout`
  seconds (read at each command) and fails with `SyncError` naming the
  remote and its URL, and saying that local commits are kept.
"""

from __future__ import annotations

from typing import Protocol

import git

from ..errors import ConfigError, SyncError
from ..history.runner import Run, last_lines
from .plumbing import LocalGit


class RemoteTunables(Protocol):
    """What a `Remote` reads, live, of its owner (a `Syncer`)."""
    network_timeout: float      # seconds for one ls-remote, fetch or push


class Remote:
    """The git remote `name` of the repository `local` works in."""

    def __init__(self, name: str, local: LocalGit, tunables: RemoteTunables) -> None:
        self.name = name
        self.git = local
        self.tunables = tunables
        self.url = name
        self.url = self.refresh(ConfigError)

    def refresh(self, error: type[Exception] = SyncError) -> str:
        """The remote's URL, read again (raising `error` if the remote is
        gone)."""
        with git.Repo(self.git.worktree) as repo, repo.config_reader() as config:
            section = f'remote "{self.name}"'
            if not config.has_section(section) or not config.has_option(section, "url"):
                raise error(f"remote={self.name!r}: no such git remote in "
                            f"{self.git.git_dir} (add it: git remote add {self.name} URL)")
            self.url = str(config.get_value(section, "url"))
        return self.url

    def upstream(self, ref: str) -> str:
        """The remote's branch to sync with: the upstream of `ref` if it is
        on this remote, else the branch of the same name."""
        name = ref[len("refs/heads/"):]
        with git.Repo(self.git.worktree) as repo, repo.config_reader() as config:
            section = f'branch "{name}"'
            if (config.has_option(section, "remote") and config.has_option(section, "merge")
                    and str(config.get_value(section, "remote")) == self.name):
                merge = str(config.get_value(section, "merge"))
                if merge.startswith("refs/heads/"):
                    return merge
        return ref

    def fetch(self, remote_ref: str) -> str | None:
        """The remote branch's commit, fetched; None if the branch (or the
        whole remote) is empty."""
        found = self.head(remote_ref)
        if found is None or self.git.has_commit(found):
            return found
        tracking = f"refs/remotes/{self.name}/{remote_ref[len('refs/heads/'):]}"
        self._network("fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance",
                      "--recurse-submodules=no", self.name, f"+{remote_ref}:{tracking}")
        fetched = self.git.rev(tracking)
        if fetched is None:
            raise SyncError(f"sync with remote {self.name!r} ({self.url}): fetching "
                            f"{remote_ref} left no {tracking}")
        return fetched

    def head(self, remote_ref: str) -> str | None:
        """The commit of the remote's branch (``git ls-remote``), None if
        it has none."""
        out = self._network("ls-remote", self.name, remote_ref).stdout
        found = [line.split("\t")[0] for line in out.decode().splitlines()
                 if line.endswith("\t" + remote_ref)]
        return found[0] if found else None

    def push(self, commit: str, remote_ref: str, expected: str | None) -> bool:
        """Push `commit` to the remote branch; False if it was refused
        because the remote branch moved away from `expected` meanwhile
        (fetch and merge again)."""
        run = self._network("push", "--porcelain", self.name, f"{commit}:{remote_ref}",
                            check=False)
        if run.returncode == 0:
            return True
        out = run.stdout.decode(errors="replace")
        # "[rejected]": not a fast-forward.  A push racing another one can
        # also fail on the remote's ref lock: then the branch has moved.
        if any(line.startswith("!\t") and "[rejected]" in line for line in out.splitlines()) \
                or self.head(remote_ref) != expected:
            return False
        raise SyncError(f"sync with remote {self.name!r} ({self.url}): push failed "
                        f"({last_lines(run.stderr or run.stdout)}); local commits are "
                        "kept, the next sync tries again")

    def _network(self, *args: str, check: bool = True) -> Run:
        run = self.git.runner.run(args, timeout=self.tunables.network_timeout,
                                  what=f"remote {self.name!r} ({self.url})")
        if check and run.returncode != 0:
            raise SyncError(f"sync with remote {self.name!r} ({self.url}) failed: git "
                            f"{args[0]}: {last_lines(run.stderr)}; local commits are "
                            "kept, the next sync tries again")
        return run
