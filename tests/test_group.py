"""Group commit (gitpersist.history.group): sync-mode writers that write
while another's commit is due share one commit, and history still matches
the files and keeps every version of a record."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from gitpersist import Store, files, paths
from gitpersist.errors import HistoryError
from gitpersist.history.group import GroupCommit


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def commits(cwd) -> int:
    return int(git(cwd, "rev-list", "--count", "HEAD"))


@pytest.fixture
def paused(monkeypatch):
    """The first writer to wait for its commit stops there (the write lock
    released, its change added) until `go` is set; `there` says it got
    there."""
    there, go = threading.Event(), threading.Event()
    real = GroupCommit.wait
    first = [True]

    def wait(self, ticket):
        if first:
            first.clear()
            there.set()
            assert go.wait(30)
        return real(self, ticket)
    monkeypatch.setattr(GroupCommit, "wait", wait)
    return there, go


def start_paused(store, paused, type, id, document) -> threading.Thread:
    there, _ = paused
    errors: list[BaseException] = []

    def put():
        try:
            store.put(type, id, document)
        except BaseException as exc:    # seen by the test through `errors`
            errors.append(exc)
    thread = threading.Thread(target=put)
    thread.errors = errors      # type: ignore[attr-defined]
    thread.start()
    assert there.wait(10)
    return thread


def test_a_writer_that_writes_meanwhile_shares_the_commit(tmp_path, paused):
    with Store(tmp_path, git=True, watch="off", fsync=False) as store:
        before = commits(tmp_path)
        first = start_paused(store, paused, "volumes", "a", {"n": 1})
        store.put("volumes", "b", {"n": 2})     # leads: commits a and b
        assert commits(tmp_path) == before + 1
        assert git(tmp_path, "show", "-s", "--format=%B", "HEAD").startswith("gitpersist: 2 changes")
        paused[1].set()
        first.join(10)
        assert not first.errors and not first.is_alive()
        assert commits(tmp_path) == before + 1
        for id, n in (("a", 1), ("b", 2)):
            relpath = paths.record_path("volumes", id)
            assert f'"n": {n}' in git(tmp_path, "show", f"HEAD:{relpath}")
        store.flush()
        assert git(tmp_path, "status", "--porcelain") == ""


def test_every_version_of_a_record_keeps_its_own_commit(tmp_path, paused):
    with Store(tmp_path, git=True, watch="off", fsync=False) as store:
        first = start_paused(store, paused, "volumes", "a", {"n": 1})
        store.put("volumes", "a", {"n": 2})     # commits version 1 first, then its own
        paused[1].set()
        first.join(10)
        assert not first.errors
        assert [v.message for v in store.versions("volumes", "a")] == [
            "volumes a: n 1 -> 2", "volumes a: created"]


def test_a_file_another_process_replaced_meanwhile_is_committed_as_it_is(tmp_path, paused):
    """Another store (as another process: its own lock file descriptor)
    rewrites the record between our write and our commit: our commit must
    not put the older version back in HEAD."""
    with Store(tmp_path, git=True, watch="off", fsync=False) as store, \
            Store(tmp_path, git=True, watch="off", fsync=False) as other:
        first = start_paused(store, paused, "volumes", "a", {"n": 1})
        other.put("volumes", "a", {"n": 3})
        paused[1].set()
        first.join(10)
        assert not first.errors
        relpath = paths.record_path("volumes", "a")
        assert git(tmp_path, "show", f"HEAD:{relpath}") == (tmp_path / relpath).read_text()
        assert '"n": 3' in (tmp_path / relpath).read_text()
        store.flush()
        other.flush()
        assert git(tmp_path, "status", "--porcelain") == ""


def test_a_failed_shared_commit_fails_every_writer_in_it_and_is_retried(tmp_path, paused):
    with Store(tmp_path, git=True, watch="off", fsync=False) as store:
        first = start_paused(store, paused, "volumes", "a", {"n": 1})
        write_pack = store.history.objects.write_pack

        def broken():
            store.history.objects.write_pack = write_pack
            raise OSError(28, "No space left on device")
        store.history.objects.write_pack = broken
        with pytest.raises(HistoryError, match="will be retried"):
            store.put("volumes", "b", {"n": 2})
        paused[1].set()
        first.join(10)
        assert [type(exc) for exc in first.errors] == [HistoryError]
        store.flush()           # the retry
        for id in ("a", "b"):
            git(tmp_path, "cat-file", "-e", f"HEAD:{paths.record_path('volumes', id)}")
        store.flush()
        assert git(tmp_path, "status", "--porcelain") == ""


def test_an_async_commit_takes_the_bytes_written_without_reading_the_file(tmp_path,
                                                                          monkeypatch):
    from gitpersist import files
    with Store(tmp_path, git=True, watch="off", fsync=False, commit_mode="async",
               commit_delay=60) as store:
        store.put("volumes", "a", {"n": 1})
        store.delete("volumes", "a")
        store.put("volumes", "b", {"n": 2})
        monkeypatch.setattr(files, "read", lambda path: pytest.fail(f"read {path}"))
        store.flush()
        monkeypatch.undo()
        assert git(tmp_path, "ls-tree", "-r", "--name-only", "HEAD", "volumes") == \
            paths.record_path("volumes", "b") + "\n"


def test_an_async_commit_of_a_file_replaced_since_commits_it_as_it_is(tmp_path):
    with Store(tmp_path, git=True, watch="off", fsync=False, commit_mode="async",
               commit_delay=60) as store, \
            Store(tmp_path, watch="off", fsync=False) as plain:     # no history: no commit
        store.put("volumes", "a", {"n": 1})
        plain.put("volumes", "a", {"n": 5})
        store.flush()
        relpath = paths.record_path("volumes", "a")
        assert '"n": 5' in git(tmp_path, "show", f"HEAD:{relpath}")


def test_on_coarse_timestamps_a_same_signature_rewrite_is_committed_as_it_is(coarse_fs):
    """With 1-second timestamps another write in the same tick can leave the
    same inode, mtime and size as ours (here: an in-place rewrite of the
    same length with the mtime put back): the commit must read the file,
    not trust the signature."""
    with Store(coarse_fs, git=True, watch="off", fsync=False, commit_mode="async",
               commit_delay=60) as store:
        store.put("volumes", "a", {"n": 1})
        path = coarse_fs / paths.record_path("volumes", "a")
        before = os.stat(path)
        text = path.read_text()
        with open(path, "r+") as file:
            file.write(text.replace('"n": 1', '"n": 7'))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert files.signature(os.stat(path)) == files.signature(before)
        store.flush()
        relpath = paths.record_path("volumes", "a")
        assert '"n": 7' in git(coarse_fs, "show", f"HEAD:{relpath}")
