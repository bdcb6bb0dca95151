"""gitpersist.sync.remote: the remote of a sync, against a bare repository
in a temp folder (no store needed)."""

from __future__ import annotations

import types

import git as gitpython
import pytest
from helpers import git

from gitpersist import ConfigError, SyncError
from gitpersist.history.runner import GitRunner
from gitpersist.sync.plumbing import LocalGit
from gitpersist.sync.remote import Remote


@pytest.fixture
def bare(bare_remote):
    return bare_remote


@pytest.fixture
def local(git_repo, bare):
    """git_repo (one commit on main) with `bare` (conftest's bare_remote)
    as its remote "origin"."""
    git(git_repo, "remote", "add", "origin", str(bare))
    return LocalGit(GitRunner(str(git_repo), error=SyncError),
                    git_dir=str(git_repo / ".git"), prefix="",
                    author=gitpython.Actor("Test", "test@example.com"))


def tunables(timeout: float = 30.0):
    return types.SimpleNamespace(network_timeout=timeout)


def commit(repo, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").strip()


def test_a_missing_remote_is_a_config_error_then_a_sync_error(local, git_repo):
    with pytest.raises(ConfigError, match="remote='nope': no such git remote"):
        Remote("nope", local, tunables())
    remote = Remote("origin", local, tunables())
    git(git_repo, "remote", "remove", "origin")
    with pytest.raises(SyncError, match="remote='origin': no such git remote"):
        remote.refresh()


def test_the_url_is_read_again_at_each_refresh(local, git_repo, bare, tmp_path):
    remote = Remote("origin", local, tunables())
    assert remote.url == str(bare)
    git(git_repo, "remote", "set-url", "origin", str(tmp_path / "elsewhere"))
    assert remote.refresh() == remote.url == str(tmp_path / "elsewhere")


def test_the_upstream_on_this_remote_else_the_same_name(local, git_repo):
    remote = Remote("origin", local, tunables())
    assert remote.upstream("refs/heads/main") == "refs/heads/main"
    git(git_repo, "config", "branch.main.remote", "origin")
    git(git_repo, "config", "branch.main.merge", "refs/heads/trunk")
    assert remote.upstream("refs/heads/main") == "refs/heads/trunk"
    git(git_repo, "config", "branch.main.remote", "other")
    assert remote.upstream("refs/heads/main") == "refs/heads/main"


def test_fetch_asks_first_and_fetches_only_what_is_new(local, git_repo, bare, tmp_path):
    remote = Remote("origin", local, tunables())
    assert remote.head("refs/heads/main") is None
    assert remote.fetch("refs/heads/main") is None          # an empty remote
    mine = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "push", "-q", "origin", "main")
    git(git_repo, "update-ref", "-d", "refs/remotes/origin/main")
    assert remote.fetch("refs/heads/main") == mine          # known here: no fetch
    assert git(git_repo, "rev-parse", "-q", "--verify", "refs/remotes/origin/main",
               check=False) == ""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    theirs = commit(other, "theirs")
    git(other, "push", "-q", "origin", "main")
    assert remote.head("refs/heads/main") == theirs
    assert remote.fetch("refs/heads/main") == theirs
    assert git(git_repo, "rev-parse", "refs/remotes/origin/main").strip() == theirs
    assert git(git_repo, "tag") == ""


def test_push_is_never_forced_and_a_moved_branch_returns_false(local, git_repo, bare, tmp_path):
    remote = Remote("origin", local, tunables())
    first = git(git_repo, "rev-parse", "HEAD").strip()
    assert remote.push(first, "refs/heads/main", None)
    assert git(bare, "rev-parse", "main").strip() == first
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    theirs = commit(other, "theirs")
    git(other, "push", "-q", "origin", "main")
    mine = commit(git_repo, "mine")
    assert remote.push(mine, "refs/heads/main", first) is False
    assert git(bare, "rev-parse", "main").strip() == theirs


def test_a_refused_push_fails_naming_the_remote_and_keeps_local_commits(local, git_repo,
                                                                        bare):
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho no pushes today >&2\nexit 1\n")
    hook.chmod(0o755)
    remote = Remote("origin", local, tunables())
    head = git(git_repo, "rev-parse", "HEAD").strip()
    with pytest.raises(SyncError) as failure:
        remote.push(head, "refs/heads/main", None)
    message = str(failure.value)
    assert "'origin'" in message and str(bare) in message and "push failed" in message
    assert "local commits are kept" in message


def test_an_unreachable_remote_fails_naming_it_and_its_url(local, git_repo, tmp_path):
    missing = tmp_path / "missing.git"
    git(git_repo, "remote", "set-url", "origin", str(missing))
    remote = Remote("origin", local, tunables())
    with pytest.raises(SyncError, match="git ls-remote") as failure:
        remote.fetch("refs/heads/main")
    assert str(missing) in str(failure.value) and "local commits are kept" in str(failure.value)


def test_a_network_command_is_stopped_after_the_owners_timeout(local, git_repo):
    git(git_repo, "config", "remote.origin.uploadpack", "sleep 3; git-upload-pack")
    owner = tunables(30.0)
    remote = Remote("origin", local, owner)
    owner.network_timeout = 0.5             # read at each command
    with pytest.raises(SyncError, match=r"did not finish within 0.5 s"):
        remote.head("refs/heads/main")
