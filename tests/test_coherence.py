"""Reads that are right without the watcher's help: watch limits, coarse
timestamps, temp files of other PID namespaces (gitpersist.changelog,
gitpersist.cache, gitpersist.watcher, gitpersist.files)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time

import pytest
from helpers import eventually, run_python, start_python

from gitpersist import Store, files, paths

WRITE = ("import sys; from gitpersist import Store; "
         "Store(sys.argv[1], watch='off').put('volumes', sys.argv[2], {'n': int(sys.argv[3])})")


def write_elsewhere(root, id: str, n: int) -> None:
    """Another process writes through a store."""
    subprocess.run([sys.executable, "-c", WRITE, str(root), id, str(n)], check=True)


# -- watch limits ------------------------------------------------------------------

def refuse(monkeypatch, error: int, after: int = 0) -> None:
    """The kernel refuses every inotify watch past the first `after` (with
    EMFILE, the descriptor itself)."""
    from gitpersist import inotify
    real, calls = inotify.add_watch, []

    def add_watch(*args):
        calls.append(args)
        if len(calls) > after:
            raise OSError(error, os.strerror(error))
        return real(*args)

    def init():
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(inotify, "add_watch", add_watch)
    if error == errno.EMFILE:
        monkeypatch.setattr(inotify, "init", init)


@pytest.mark.parametrize("error, after, limit", [
    (errno.ENOSPC, 1, "fs.inotify.max_user_watches"),       # the type folders are refused
    (errno.ENOSPC, 0, "fs.inotify.max_user_watches"),       # none at all
    (errno.EMFILE, 0, "fs.inotify.max_user_instances"),     # the 129th store of a user
])
def test_a_refused_watch_is_named_and_reads_stay_right(tmp_path, monkeypatch, caplog,
                                                       error, after, limit):
    with Store(tmp_path, watch="off") as first:
        for n in range(5):
            first.put("volumes", f"v{n}", {"n": 0})
    refuse(monkeypatch, error, after)
    with Store(tmp_path, watch="native") as store:      # opens: no raw OSError
        assert len(store.all("volumes")) == 5
        write_elsewhere(tmp_path, "v1", 1)               # through a store: the change log
        path = tmp_path / paths.record_path("volumes", "v2")
        path.write_text('{"id": "v2", "n": 2}')          # by hand: read-time checks
        assert store.get("volumes", "v1")["n"] == 1
        assert {d["id"]: d["n"] for d in store.all("volumes")}["v2"] == 2
    assert limit in caplog.text and caplog.text.count("not watching") == 1


def test_a_refused_polling_watch_is_named(tmp_path, monkeypatch, caplog):
    """watchdog's observers (watch="polling") report a refusal the same way."""
    from watchdog.observers.api import BaseObserver

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with Store(tmp_path, watch="off") as first:
        first.put("volumes", "v0", {"n": 0})
    monkeypatch.setattr(BaseObserver, "schedule", schedule)
    with Store(tmp_path, watch="polling") as store:
        path = tmp_path / paths.record_path("volumes", "v0")
        path.write_text('{"id": "v0", "n": 2}')
        assert store.get("volumes", "v0")["n"] == 2
    assert "fs.inotify.max_user_watches" in caplog.text
    assert caplog.text.count("not watching") == 1


def test_two_processes_one_lists_then_the_other_creates(tmp_path):
    """Ember-CSI's duplicate volume: a listing made the type complete, and
    another process's new record must still be found, by id and by scan."""
    for watch in ("off", "native", "polling"):
        root = tmp_path / watch
        with Store(root, watch=watch, poll_interval=3600) as store:
            assert store.all("volumes") == []
            write_elsewhere(root, "new", 1)
            assert store.get("volumes", "new") == {"id": "new", "n": 1}
            assert [d["id"] for d in store.find("volumes", n=1)] == ["new"]


# -- coarse timestamps ------------------------------------------------------------------

def same_second() -> None:
    """Wait for the start of a second: the next few writes share it."""
    time.sleep(1 - time.time() % 1 + 0.01)


@pytest.mark.parametrize("watch", ["native", "off"])
def test_quick_same_size_writes_by_another_process_are_read(coarse_fs, watch):
    """Two same-size writes in one second can repeat (inode, mtime, size)
    when the inode is reused: the change log says which revision is there."""
    with Store(coarse_fs / "s", watch=watch) as reader:
        reader.put("volumes", "v", {"n": 0})
        for round in range(3):
            same_second()
            write_elsewhere(coarse_fs / "s", "v", 1)
            assert reader.get("volumes", "v")["n"] == 1
            write_elsewhere(coarse_fs / "s", "v", 2)        # same size, same second
            assert reader.get("volumes", "v")["n"] == 2
            write_elsewhere(coarse_fs / "s", "v", 0)


def test_an_in_place_edit_in_the_same_second_is_read(coarse_fs):
    """Same inode, same size, same (coarse) mtime: git's racy rule."""
    with Store(coarse_fs / "s", watch="native") as reader:
        reader.put("volumes", "v", {"n": 0})
        path = coarse_fs / "s" / paths.record_path("volumes", "v")
        same_second()
        path.write_text('{"id": "v", "n": 1}')
        assert eventually(lambda: reader.get("volumes", "v")["n"] == 1, 5)
        path.write_text('{"id": "v", "n": 2}')               # same second
        assert eventually(lambda: reader.get("volumes", "v")["n"] == 2, 5)


# -- temp files of other hosts and PID namespaces ----------------------------------------

def test_a_temp_file_of_another_host_is_stale_only_when_old(tmp_path):
    young = tmp_path / ".v.json.1.0badcafe.12345678.tmp"
    old = tmp_path / ".w.json.1.0badcafe.12345678.tmp"
    for path in (young, old):
        path.write_text("{}")
    os.utime(old, (time.time() - files.STALE_AGE - 60,) * 2)
    assert not files.is_stale_temp(young.name, str(young))
    assert files.is_stale_temp(old.name, str(old))
    ours = tmp_path / f".x.json.{os.getpid()}.{files.HOST}.12345678.tmp"
    ours.write_text("{}")
    assert not files.is_stale_temp(ours.name, str(ours))


READ_IN_A_NAMESPACE = """
import sys
from gitpersist import Store
with Store(sys.argv[1], watch="off") as store:
    print(len(store.all("volumes")))
"""


@pytest.mark.slow
def test_a_reader_in_another_pid_namespace_leaves_a_live_writers_temp_file(tmp_path):
    """kill(pid, 0) is answered in the reader's namespace: a live writer of
    this namespace must not look dead from there."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True).returncode != 0:
        pytest.skip("cannot make a PID namespace here (unshare)")
    root = tmp_path / "store"
    writer = start_python("""
        import os, sys, time
        from gitpersist import Store, files, paths
        with Store(sys.argv[1], watch="off") as store:
            store.put("volumes", "v", {})
        folder = os.path.dirname(os.path.join(sys.argv[1], paths.record_path("volumes", "v")))
        temp = os.path.join(folder, f".v.json.{os.getpid()}.{files.HOST}.12345678.tmp")
        open(temp, "w").close()           # a write under way
        print(temp, flush=True)
        time.sleep(60)
        """, str(root))
    try:
        temp = writer.stdout.readline().strip()
        assert os.path.exists(temp)
        run = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable,
                              "-c", READ_IN_A_NAMESPACE, str(root)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == "1", run.stderr
        assert os.path.exists(temp)
    finally:
        writer.kill()
        writer.wait()
    run_python(READ_IN_A_NAMESPACE, str(root))              # here, the writer is gone: removed
    assert not os.path.exists(temp)


def test_a_broken_file_fixed_in_place_in_the_same_second_is_read(coarse_fs):
    """The same signature as the broken version it replaced (found by review)."""
    root = coarse_fs / "s"
    with Store(root, watch="native") as store:
        store.put("volumes", "v", {"n": 0})
        path = root / paths.record_path("volumes", "v")
        same_second()
        path.write_text('{"id": "v", "n": 1,}')           # broken (a trailing comma)
        assert eventually(lambda: store.all("volumes") == [] and store.corrupt("volumes"), 5)
        path.write_text('{"id": "v", "n": 12}')           # fixed in place: same size
        assert eventually(lambda: store.all("volumes") == [{"id": "v", "n": 12}], 5), (
            store.corrupt("volumes"))
