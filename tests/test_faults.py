"""Faults: a full disk, a read-only store, failing system calls, stale and
busy locks, hand-broken records, the store folder vanishing under a running
process.  Each one gives a clear error naming the file (or folder), leaves
the previous record intact, and commits no half state to git."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
import types

import pytest

from gitpersist import (CorruptRecord, HistoryError, LockTimeout, Store,
                        StoreError, fsck, paths)
from gitpersist import files as gp_files
from helpers import GIT_ENV, eventually, git, start_python



@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def git_fsck_clean(root) -> None:
    run = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=root,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "error" not in run.stderr, run.stderr


def record_file(root, type: str, id: str) -> str:
    return os.path.join(root, *paths.record_path(type, id).split("/"))


def leftovers(root) -> list[str]:
    """Temp files anywhere in the store or its git objects."""
    found = []
    for folder, _, names in os.walk(root):
        found += [os.path.join(folder, name) for name in names
                  if name.endswith(gp_files.TEMP_SUFFIX) or name.startswith("tmp_obj_")]
    return found


def fresh_get(root, type: str, id: str):
    with Store(root, watch="off") as store:
        return store.get(type, id)


# -- a full or read-only file system ---------------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) mounts a tmpfs of that size; skips if mounting is not
    permitted here (not root, or no CAP_SYS_ADMIN in a container)."""
    mounted = []

    def mount(size: str) -> str:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                              "tmpfs", str(point)], capture_output=True, text=True)
        if run.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {run.stderr.strip()}")
        mounted.append(point)
        return str(point)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: str) -> str:
    """Fill the file system of `folder` to the last byte; return the filler."""
    filler = os.path.join(folder, "filler")
    with open(filler, "wb", buffering=0) as file:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    file.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_disk_full(tmpfs, use_git):
    root = os.path.join(tmpfs("2m"), "store")
    with Store(root, git=use_git, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
        store.flush()                           # the git index too
        head = git(root, "rev-parse", "HEAD") if use_git else None
        filler = fill(os.path.dirname(root))
        with pytest.raises(StoreError, match=rf"cannot write {record_file(root, 'volumes', 'v1')}"
                                             r": No space left on device"):
            store.put("volumes", "v1", {"size": 2, "pad": "x" * 100_000})
        with pytest.raises(StoreError, match=r"cannot write .*v2\.json: No space left"):
            store.put("volumes", "v2", {"pad": "x" * 100_000})
        assert store.get("volumes", "v1") == {"id": "v1", "size": 1}
        assert store.get("volumes", "v2") is None
        assert fresh_get(root, "volumes", "v1") == {"id": "v1", "size": 1}
        assert leftovers(root) == []
        if use_git:                             # nothing half-done reached git
            assert git(root, "rev-parse", "HEAD") == head
            assert git(root, "status", "--porcelain") == ""
            git_fsck_clean(root)
        os.unlink(filler)                       # space again: writes work again
        store.put("volumes", "v1", {"size": 3})
    assert fresh_get(root, "volumes", "v1") == {"id": "v1", "size": 3}
    if use_git:
        assert git(root, "show", "HEAD:" + paths.record_path("volumes", "v1")).count('"size": 3')
        assert git(root, "status", "--porcelain") == ""
        git_fsck_clean(root)


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_read_only_file_system(tmpfs, use_git):
    point = tmpfs("4m")
    root = os.path.join(point, "store")
    with Store(root, git=use_git, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
    reader = Store(root, watch="off")           # opened before: reads keep working
    subprocess.run(["mount", "-o", "remount,ro", point], check=True)
    record = os.path.join(root, *paths.record_path("volumes", "v1").split("/"))
    try:
        with pytest.raises(StoreError, match=rf"cannot write {record}: Read-only file system"):
            reader.put("volumes", "v1", {"size": 2})
        assert reader.get("volumes", "v1") == {"id": "v1", "size": 1}
        assert [d["id"] for d in reader.all("volumes")] == ["v1"]
        with Store(root, git=use_git, watch="off") as store:     # a lock needs no writing
            assert store.get("volumes", "v1") == {"id": "v1", "size": 1}
    finally:
        reader.close()
        subprocess.run(["mount", "-o", "remount,rw", point], check=True)
    if use_git:
        assert git(root, "status", "--porcelain") == ""


class FailingOs(types.SimpleNamespace):
    """gitpersist.files' view of the os module with one call failing."""

    def __init__(self, name: str, error: int, after: int = 0) -> None:
        super().__init__()
        self.name, self.error, self.calls = name, error, 0
        self.after = after

    def __getattr__(self, attr):
        real = getattr(os, attr)
        if attr != self.name:
            return real

        def failing(*args, **kwargs):
            self.calls += 1
            if self.calls > self.after:
                raise OSError(self.error, os.strerror(self.error))
            if attr == "write":         # a short write: the caller must go on
                fd, data = args
                return real(fd, data[:len(data) // 2])
            return real(*args, **kwargs)
        return failing


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
@pytest.mark.parametrize("call, error, after", [
    ("write", errno.ENOSPC, 1),          # the disk fills up in the middle of the file
    ("fsync", errno.EIO, 0),             # the device fails to write the file
    ("replace", errno.EROFS, 0),         # the file system went read-only
    ("open", errno.EMFILE, 1),           # out of file descriptors at the temp file
])
def test_failing_system_calls(tmp_path, monkeypatch, use_git, call, error, after):
    root = str(tmp_path / "store")
    with Store(root, git=use_git, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
        head = git(root, "rev-parse", "HEAD") if use_git else None
        monkeypatch.setattr(gp_files, "os", FailingOs(call, error, after))
        with pytest.raises(StoreError) as info:
            store.put("volumes", "v1", {"size": 2, "pad": "x" * 300_000})
        monkeypatch.undo()
        assert str(info.value) == (f"cannot write {record_file(root, 'volumes', 'v1')}: "
                                   f"{os.strerror(error)}")
        assert store.get("volumes", "v1") == {"id": "v1", "size": 1}
        assert fresh_get(root, "volumes", "v1") == {"id": "v1", "size": 1}
        assert leftovers(root) == []
        if use_git:
            assert git(root, "rev-parse", "HEAD") == head
    if use_git:
        assert git(root, "status", "--porcelain") == ""
        git_fsck_clean(root)


def test_commit_without_space_for_objects(tmp_path, monkeypatch):
    """The record file is written but git's objects are not: the write
    stands, the error says the commit failed and will be retried, no
    partial object or commit is left, and once there is room it commits."""
    root = str(tmp_path / "store")
    with Store(root, git=True, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
        store.history.retry_delay = 0.05
        head = git(root, "rev-parse", "HEAD")

        write_all = gp_files.write_all

        def no_space(fd, data):     # git's packs and their indexes find no room
            if bytes(data[:4]) in (b"PACK", b"\xfftOc"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write_all(fd, data)
        monkeypatch.setattr(gp_files, "write_all", no_space)
        with pytest.raises(HistoryError, match=r"commit of volumes/.*v1\.json in .*\.git "
                                               r"failed.*No space left.*will be retried"):
            store.put("volumes", "v1", {"size": 2})
        assert store.get("volumes", "v1") == {"id": "v1", "size": 2}
        assert git(root, "rev-parse", "HEAD") == head
        assert [p for p in leftovers(root) if "tmp_obj_" in p] == []
        git_fsck_clean(root)
        monkeypatch.undo()
        assert eventually(lambda: git(root, "rev-parse", "HEAD") != head)
        assert '"size": 2' in git(root, "show", "HEAD:" + paths.record_path("volumes", "v1"))
    assert git(root, "status", "--porcelain") == ""
    git_fsck_clean(root)


# -- locks ---------------------------------------------------------------------------

HOLDER = """
import sys, time
from gitpersist import Store
with Store(sys.argv[1], watch="off") as store:
    with store.batch("hold the lock"):
        store.put("volumes", "held", {})
        print("held", flush=True)
        time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the store's write lock (inside a batch)."""
    root = str(tmp_path / "store")
    proc = start_python(HOLDER, root)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    yield root, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def test_busy_lock_times_out_naming_the_file_and_a_dead_holder_frees_it(holder):
    root, proc = holder
    with Store(root, watch="off", lock_timeout=0.3) as store:
        lock = os.path.join(root, ".gitpersist", "write.lock")
        with pytest.raises(LockTimeout, match=rf"could not lock {lock} within 0.3 s "
                                              r"\(lock_timeout\)"):
            store.put("volumes", "v1", {})
        assert store.get("volumes", "v1") is None
        # the holder dies without releasing anything: the kernel drops its
        # flock, the lock file stays, and it no longer blocks
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert os.path.exists(lock)
        store.put("volumes", "v1", {"after": True})      # within 0.3 s
    assert fresh_get(root, "volumes", "v1") == {"id": "v1", "after": True}
    assert fresh_get(root, "volumes", "held") == {"id": "held"}


def test_lock_timeout_zero_fails_at_once(holder):
    root, _ = holder
    with Store(root, watch="off", lock_timeout=0) as store:
        with pytest.raises(LockTimeout, match=r"within 0(\.0)? s"):
            store.delete("volumes", "held")
    assert fresh_get(root, "volumes", "held") == {"id": "held"}


# -- hand-broken records ------------------------------------------------------------

def break_record(path: str, how: str, tmp_path) -> None:
    os.unlink(path)
    if how == "directory":
        os.mkdir(path)
    elif how == "symlink":          # to a valid record elsewhere: still refused
        target = tmp_path / "elsewhere.json"
        target.write_text('{"id": "v2", "size": 9}')
        os.symlink(target, path)
    else:
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
            file.write({"empty": b"", "binary": b"\xff\xfe\x00\x01garbage",
                        "truncated": b'{\n  "id": "v2",\n  "si',
                        "nul": b'{"id": "v2"}\0\0\0',
                        "bad-utf8": b'{"id": "v2", "name": "\xc3\x28"}',
                        "array": b'["v2"]'}[how])


@pytest.mark.parametrize("how", ["empty", "binary", "truncated", "nul", "bad-utf8", "array",
                                 "directory", "symlink"])
def test_hand_broken_record(tmp_path, how):
    root = str(tmp_path / "store")
    with Store(root, watch="off", indexes={"volumes": {"size": None}}) as store:
        for n in range(1, 4):
            store.put("volumes", f"v{n}", {"size": n})
    broken = record_file(root, "volumes", "v2")
    break_record(broken, how, tmp_path)
    with Store(root, watch="off", indexes={"volumes": {"size": None}}) as store:
        with pytest.raises(CorruptRecord, match=rf"corrupt record {broken}: "):
            store.get("volumes", "v2")
        assert store.get("volumes", "v1") == {"id": "v1", "size": 1}
        assert [d["id"] for d in store.all("volumes")] == ["v1", "v3"]
        assert [d["id"] for d in store.find("volumes", size=3)] == ["v3"]
        with pytest.raises(CorruptRecord, match=broken):       # still, after a scan
            store.get("volumes", "v2")
        assert store.delete("volumes", "v3")                   # the rest stays writable
    relpath = paths.record_path("volumes", "v2")
    problems = [p for p in fsck.check(root) if p.path == relpath]
    assert [p.kind for p in problems] == [{"directory": "unknown-file",
                                           "symlink": "symlink"}.get(how, "corrupt")]
    assert not fsck.clean(problems)


def test_hand_broken_record_in_git_is_reported_not_hidden(tmp_path):
    root = str(tmp_path / "store")
    with Store(root, git=True, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
    broken = record_file(root, "volumes", "v1")
    with open(broken, "w") as file:
        file.write("{ torn")
    problems = fsck.check(root, git=True)
    assert {(p.kind, p.path) for p in problems} == {
        ("corrupt", paths.record_path("volumes", "v1")),
        ("uncommitted", paths.record_path("volumes", "v1"))}
    with Store(root, git=True, watch="off") as store:
        with pytest.raises(CorruptRecord, match=broken):
            store.get("volumes", "v1")
        # history still has the good version to restore
        assert store.get_at("volumes", "v1", "HEAD~1") == {"id": "v1", "size": 1}
        store.restore("volumes", "v1", "HEAD~1")
        assert store.get("volumes", "v1") == {"id": "v1", "size": 1}
    assert fsck.clean(fsck.check(root, git=True))


# -- the store folder goes away -----------------------------------------------------

@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
@pytest.mark.parametrize("watch", ["off", "native"])
@pytest.mark.parametrize("how", ["removed", "renamed"])
def test_store_folder_goes_away_while_open(tmp_path, use_git, watch, how):
    root = str(tmp_path / "store")
    store = Store(root, git=use_git, watch=watch)
    try:
        store.put("volumes", "v1", {"size": 1})
        if how == "removed":
            shutil.rmtree(root)
        else:
            os.rename(root, tmp_path / "elsewhere")
        missing = rf"store folder {root} is missing"
        with pytest.raises(StoreError, match=missing):
            store.put("volumes", "v2", {"size": 2})
        with pytest.raises(StoreError, match=missing):
            store.delete("volumes", "v1")
        # reads do not crash: they answer from the cache or find nothing
        assert store.get("volumes", "v1") in (None, {"id": "v1", "size": 1})
        assert store.get("volumes", "v2") is None
        assert store.all("volumes") in ([], [{"id": "v1", "size": 1}])
        assert store.types() in ([], ["volumes"])
        assert not os.path.exists(root)         # and nothing recreated it
    finally:
        store.close()
    assert not os.path.exists(root)
    if how == "renamed":                        # the moved store is whole
        moved = str(tmp_path / "elsewhere")
        with Store(moved, git=use_git, watch="off") as again:
            assert again.all("volumes") == [{"id": "v1", "size": 1}]
        if use_git:
            assert git(moved, "status", "--porcelain") == ""


# -- races ---------------------------------------------------------------------------

def test_a_late_background_index_update_never_undoes_a_newer_one(tmp_path, monkeypatch):
    """The history thread's index update, computed before a newer commit
    but slow to run, must not land after the update of that commit (made by
    flush or close): the index would go back to the older version, and a
    plain ``git commit`` would then commit it."""
    root = str(tmp_path / "store")
    slowed = []

    def slow_in_background(args, **kwargs):
        if "update-index" in args and threading.current_thread().name.startswith(
                "gitpersist-history"):
            slowed.append(True)
            time.sleep(0.3)
        return real_run(args, **kwargs)
    with Store(root, git=True, watch="off") as store:
        store.put("volumes", "v1", {"n": 0})
        store.flush()
        real_run = store.history.runner.run
        monkeypatch.setattr(store.history.runner, "run", slow_in_background)
        store.history.index_delay = 0
        store.put("volumes", "v1", {"n": 1})    # the thread starts its slow update
        time.sleep(0.1)
        store.put("volumes", "v1", {"n": 2})
        store.flush()
        time.sleep(0.4)                         # the slow update has landed
        assert slowed
        assert git(root, "diff", "--cached", "--name-only") == ""
        store.put("volumes", "v1", {"n": 3})
        time.sleep(0.1)
        store.put("volumes", "v1", {"n": 4})
    assert git(root, "status", "--porcelain") == ""
