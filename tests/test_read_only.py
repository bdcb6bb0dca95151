"""Opening a store to read needs no write lock, free space or writable file
system (issue 14): ``read_only=True``, picked with a warning where the
folder is not writable (a read-only bind mount of a git clone, a folder a
non-root user may not write); a full disk; a SIGSTOPped lock holder.  The
recovery an open would do is left to the next writer."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from gitpersist import ConfigError, ReadOnlyStore, Store, paths
from helpers import CINDERLIB_MISSING, git
from test_faults import fill, holder, tmpfs  # noqa: F401 (fixtures)


def make_store(root, **options) -> None:
    with Store(root, git=True, watch="off", fsync=False, **options) as store:
        store.put("volumes", "v1", {"size": 1})
        store.put("volumes", "v1", {"size": 2})


def tree_state(root) -> dict[str, tuple[int, int]]:
    """Every path below `root` with its size and mtime."""
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return found


def edit_by_hand(root, id: str, text: str) -> None:
    path = os.path.join(root, *paths.record_path("volumes", id).split("/"))
    with open(path, "w") as file:
        file.write(text)


def assert_writes_refused(store, root) -> None:
    message = rf"store {root} is open read-only .*writes are refused"
    with pytest.raises(ReadOnlyStore, match=message):
        store.put("volumes", "v2", {})
    with pytest.raises(ReadOnlyStore, match=message):
        store.delete("volumes", "v1")
    with pytest.raises(ReadOnlyStore, match=message):
        with store.batch("no"):
            pass


def test_read_only_reads_history_and_refuses_writes_changing_nothing(tmp_path):
    root = str(tmp_path / "store")
    make_store(root)
    edit_by_hand(root, "v1", '{"id": "v1", "size": 3}\n')      # recovery work
    head = git(root, "rev-parse", "HEAD")
    before = tree_state(root)
    with Store(root, git=True, read_only=True) as store:
        assert store.options.read_only
        assert store.get("volumes", "v1") == {"id": "v1", "size": 3}
        assert [d["id"] for d in store.all("volumes")] == ["v1"]
        assert len(store.versions("volumes", "v1")) == 2
        assert store.get_at("volumes", "v1", "HEAD~1") == {"id": "v1", "size": 1}
        assert '+{"id": "v1", "size": 3}' in store.diff("volumes", "v1", "HEAD")
        assert_writes_refused(store, root)
        with pytest.raises(ReadOnlyStore):
            store.restore("volumes", "v1", "HEAD~1")
        store.flush()                   # nothing of ours to commit
    assert tree_state(root) == before and git(root, "rev-parse", "HEAD") == head
    with Store(root, git=True, watch="off"):        # the next writer recovers
        pass
    assert git(root, "rev-parse", "HEAD") != head
    assert git(root, "status", "--porcelain") == ""


def test_read_only_opens_only_an_existing_store(tmp_path):
    with pytest.raises(Exception, match=r"store folder .*missing \(read_only=True opens an "
                                        r"existing store\)"):
        Store(tmp_path / "nothing", read_only=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match=r"no gitpersist store at .*read_only=True"):
        Store(tmp_path / "empty", read_only=True)
    assert os.listdir(tmp_path / "empty") == []
    with Store(tmp_path / "plain", watch="off"):
        pass
    with pytest.raises(Exception, match=r"no git repository holds the store"):
        Store(tmp_path / "plain", git=True, read_only=True)
    assert not (tmp_path / "plain" / ".git").exists()


def test_read_only_and_syncing_options_are_refused_together():
    with pytest.raises(ConfigError, match=r"sync_on_open: True needs read_only false"):
        Store("/nonexistent", git=True, remote="origin", sync_on_open=True, read_only=True)
    with pytest.raises(ConfigError, match=r"read_only: 'yes' is not true or false"):
        Store("/nonexistent", read_only="yes")


@pytest.fixture
def read_only_clone(tmp_path):
    """A git clone of a store (no lock file, no change log: they are not
    committed), bind-mounted read-only; skips where mounts are refused."""
    make_store(tmp_path / "store")
    clone, point = tmp_path / "clone", tmp_path / "ro"
    git(tmp_path, "clone", "-q", str(tmp_path / "store"), str(clone))
    point.mkdir()
    run = subprocess.run(["mount", "--bind", str(clone), str(point)], capture_output=True,
                         text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {run.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(point)], check=True)
        yield str(point)
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_read_only_mount_of_a_clone_opens_read_only_with_a_warning(read_only_clone,
                                                                      caplog):
    root = read_only_clone
    for use_git in (True, False):
        with caplog.at_level(logging.WARNING, logger="gitpersist.store"):
            with Store(root, git=use_git) as store:
                assert store.options.read_only
                assert store.get("volumes", "v1") == {"id": "v1", "size": 2}
                if use_git:
                    assert len(store.versions("volumes", "v1")) == 2
                assert_writes_refused(store, root)
        assert f"{root}: the store folder is not writable: opened read-only" in caplog.text


def cli(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitpersist", "--path", root, *args],
                          capture_output=True, text=True)


def test_the_reading_commands_work_on_a_read_only_mount(read_only_clone):
    root = read_only_clone
    for args, expected in ((["ls", "volumes"], "v1"), (["show", "volumes", "v1"], "size   2"),
                           (["log"], "volumes v1"), (["diff", "volumes", "v1", "HEAD~1"],
                                                     '+  "size": 2')):
        run = cli(root, *args)
        assert run.returncode == 0 and expected in run.stdout, (args, run.stderr)
    run = cli(root, "fsck")
    assert "Read-only" not in run.stdout + run.stderr and "Traceback" not in run.stderr


def test_a_folder_this_user_may_not_write(tmp_path):
    """A store whose folders the user may not write, opened by a process
    that cannot override file permissions.  Here we run as root, whose
    CAP_DAC_OVERRIDE writes anywhere: the child drops it (setpriv) rather
    than switching to another uid (os.setuid), because this Python lives
    under /root, which another uid cannot read."""
    if os.geteuid() != 0:
        pytest.skip("runs as root only: a non-root user cannot make a folder it may "
                    "not write and still own it here")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    root = str(tmp_path / "store")
    make_store(root)
    subprocess.run(["chmod", "-R", "a-w", root], check=True)
    code = textwrap.dedent("""
        import sys
        from gitpersist import ReadOnlyStore, Store
        with Store(sys.argv[1], git=True, watch="off") as store:
            print(store.options.read_only, store.get("volumes", "v1")["size"],
                  len(store.versions("volumes", "v1")))
            try:
                store.put("volumes", "v2", {})
            except ReadOnlyStore as exc:
                print("refused", exc)
        """)
    try:
        run = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                              sys.executable, "-c", code, root], capture_output=True,
                             text=True)
    finally:
        subprocess.run(["chmod", "-R", "u+w", root], check=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "True 2 2" and lines[1].startswith(f"refused store {root} is open "
                                                         "read-only"), run.stdout
    assert "opened read-only" in run.stderr


def test_a_full_disk_opens_with_git_and_reads(tmpfs):  # noqa: F811 (a fixture)
    """git status at recovery took index.lock to refresh the index and died
    on ENOSPC; a recovery that finds work cannot write it: left to the
    next write once there is space."""
    root = os.path.join(tmpfs("4m"), "store")
    make_store(root)
    edit_by_hand(root, "v1", '{"id": "v1", "size": 7}\n')      # recovery work
    os.utime(os.path.join(root, ".gitpersist", "format.json"))  # an index to refresh
    head = git(root, "rev-parse", "HEAD")
    filler = fill(os.path.dirname(root))
    with Store(root, git=True, watch="off") as store:
        assert store.get("volumes", "v1") == {"id": "v1", "size": 7}
        assert len(store.versions("volumes", "v1")) == 2
        assert store.history.recovery_due
        os.unlink(filler)
        store.put("volumes", "v2", {"size": 1})
        assert not store.history.recovery_due
    assert git(root, "log", "--format=%s", "-2").splitlines() == [
        "volumes v2: created", "gitpersist: commit 1 store files found changed at open"]
    assert git(root, "rev-parse", "HEAD~2") == head


@pytest.mark.cinderlib
def test_the_plugin_opens_and_reads_on_a_full_disk(tmpfs):  # noqa: F811 (a fixture)
    pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)
    from gitpersist.cinder.plugin import FilePersistence
    root = os.path.join(tmpfs("4m"), "store")
    FilePersistence(path=root, git=True, watch="off").close()
    git(root, "rev-parse", "HEAD")
    filler = fill(os.path.dirname(root))
    plugin = FilePersistence(path=root, git=True, watch="off")
    try:
        assert plugin.get_volumes() == []
    finally:
        plugin.close()
        os.unlink(filler)


def test_a_stopped_lock_holder_does_not_keep_a_git_store_from_opening(holder):  # noqa: F811
    root, proc = holder
    os.kill(proc.pid, signal.SIGSTOP)
    with Store(root, git=True, watch="off", lock_timeout=0.2) as store:
        assert store.get("volumes", "held") == {"id": "held"}
        assert store.history.recovery_due          # left to the next writer


def test_a_read_only_store_saves_no_snapshot(tmp_path):
    """The cache's snapshot is local state a reader would write at close:
    a store opened read_only writes nothing, not even that."""
    from gitpersist.snapshot import Snapshots
    count = Snapshots.MIN_RECORDS + 1
    with Store(tmp_path, watch="off", fsync=False) as store:
        for i in range(count):
            store.put("volumes", f"v{i}", {"n": i})
    with Store(tmp_path, watch="off", read_only=True) as reader:
        assert len(reader.all("volumes")) == count
    assert not (tmp_path / ".gitpersist" / "snapshot").exists()
