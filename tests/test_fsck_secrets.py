"""gitpersist.fsck finds what would let a secret into git (issue 13): a
loosened ``.gitignore``, files tracked under ``.gitpersist/secrets``, and
declared secret fields inline in a record file or in HEAD's tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import GIT_ENV, git

from gitpersist import Store, fsck, paths
from gitpersist.layout import GITIGNORE_FILE, KEY_FILE, META_GITIGNORE

SECRETS = {"volumes": ["password"]}


@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    with Store(path, git=True, watch="off", secret_fields=SECRETS) as store:
        store.put("volumes", "v1", {"size": 1, "password": "PW-SECRET"})
    assert fsck.check(path) == []
    return path


def kinds(root) -> set[tuple[str, str]]:
    return {(p.kind, p.path) for p in fsck.check(root) if not p.note}


def commit_all(root) -> None:
    git(root, "add", "-A", "-f", ".")
    git(root, "-c", "user.name=Ops", "-c", "user.email=o@x", "commit", "-q", "-m", "oops")


@pytest.mark.parametrize("content", [b"", b"*\n!*\n", None], ids=["empty", "unignores", "gone"])
def test_a_loosened_gitignore_is_reported_and_repaired(root, content):
    path = root / GITIGNORE_FILE
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    problems = [p for p in fsck.check(root) if p.kind == "gitignore"]
    assert [(p.path, p.repairable) for p in problems] == [(GITIGNORE_FILE, True)]
    assert "secrets" in problems[0].message
    assert any(p.kind == "gitignore" and p.repaired for p in fsck.check(root, repair=True))
    assert path.read_bytes() == META_GITIGNORE
    assert fsck.clean(fsck.check(root, repair=True))


def test_files_tracked_under_the_secrets_folder_are_reported(root):
    (root / GITIGNORE_FILE).write_bytes(b"")
    commit_all(root)                                # the key, the side file: in git now
    (root / GITIGNORE_FILE).write_bytes(META_GITIGNORE)
    side = f".gitpersist/secrets/{paths.record_path('volumes', 'v1')}"
    tracked = {p for k, p in kinds(root) if k == "tracked-secret"}
    assert tracked == {KEY_FILE, side}
    problem = next(p for p in fsck.check(root) if p.kind == "tracked-secret")
    assert "git rm --cached" in problem.message and not problem.repairable


def test_secret_fields_inline_in_a_record_file_or_in_head_are_reported(root):
    relpath = paths.record_path("volumes", "v1")
    (root / relpath).write_text('{"id": "v1", "password": "PW-SECRET", "size": 1}\n')
    problems = [p for p in fsck.check(root) if p.kind == "inline-secret"]
    assert [(p.path, "password" in p.message, "HEAD" in p.message) for p in problems] == [
        (relpath, True, False)]
    commit_all(root)
    problems = [p for p in fsck.check(root) if p.kind == "inline-secret"]
    assert sorted((p.path, "HEAD" in p.message) for p in problems) == [
        (relpath, False), (relpath, True)]
    assert "PW-SECRET" not in " ".join(p.message for p in problems)    # never quoted


def test_a_folder_that_is_no_store_gets_no_gitignore(tmp_path):
    assert [p.kind for p in fsck.check(tmp_path, git=False)] == ["format"]
    fsck.check(tmp_path, repair=True, git=False)
    assert not (tmp_path / GITIGNORE_FILE).exists()
