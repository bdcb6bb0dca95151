"""Under eventlet, patched before the store opened or after (what Ember-CSI
and cinder's own modules do): writes work, every process's acknowledged
writes are read, close is quiet.  Real eventlet, in new interpreters (the
test process itself never patches: conftest.py): the pinned 0.33, and the
newest the cinderlib extra gets (tests/run.py --fresh, .ci/run's last step).
The matrix: a plain Store and the plugin with a real cinderlib Backend on
cinder's fake driver; git on and off (sync and async); patched before and
after open; green threads writing side by side, and a real thread (started
before the patching) inside the write lock at the patching; a store and
the plugin syncing to a bare remote in the background (sync_after_commit,
sync_every): the background pushes go on after the patching."""

from __future__ import annotations

import pytest
from helpers import GIT_ENV, run_python

STORE = """
import subprocess, sys
order, root, git, mode = sys.argv[1], sys.argv[2], sys.argv[3] == "git", sys.argv[4]
if order == "before":
    import eventlet; eventlet.monkey_patch()
from gitpersist import Store
# async: a commit_delay no test waits for; after the patching, the writer commits
store = Store(root, git=git, watch="native", commit_mode=mode,
              commit_delay=0.05 if order == "before" else 600)
store.put("volumes", "a", {})
assert [d["id"] for d in store.all("volumes")] == ["a"]        # the type is complete
if order == "after":
    import eventlet; eventlet.monkey_patch()
import eventlet, eventlet.patcher
assert eventlet.patcher.is_monkey_patched("thread")
store.put("volumes", "b", {})
if git and order == "after":        # committed by the writer, the worker thread parked
    log = subprocess.run(["git", "-C", root, "log", "--name-only", "--format="],
                         capture_output=True, text=True, check=True).stdout.split()
    assert any(name.endswith("/b.json") for name in log), log
def writes(n):      # green threads writing side by side
    for i in range(5):
        store.put("volumes", f"g{n}{i}", {})
        assert store.get("volumes", f"g{n}{i}") == {"id": f"g{n}{i}"}
for thread in [eventlet.spawn(writes, n) for n in range(4)]:
    thread.wait()
subprocess.run([sys.executable, "-c", "import sys; from gitpersist import Store; "
                "Store(sys.argv[1], watch='off').put('volumes', 'other', {})", root], check=True)
assert store.get("volumes", "other") == {"id": "other"}
assert [d["id"] for d in store.all("volumes")] == (
    ["a", "b"] + [f"g{n}{i}" for n in range(4) for i in range(5)] + ["other"])
store.flush()
if git:
    names = subprocess.run(["git", "-C", root, "log", "--name-only", "--format="],
                           capture_output=True, text=True, check=True).stdout.split()
    assert sum(name.startswith("volumes/") for name in names) == 22, names     # ours
store.close()
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("git, mode", [("plain", "sync"), ("git", "sync"), ("git", "async")])
def test_a_store_under_eventlet(tmp_path, order, git, mode):
    pytest.importorskip("eventlet")
    run = run_python(STORE, order, str(tmp_path / "store"), git, mode, check=False,
                     env=GIT_ENV, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    assert "Traceback" not in run.stderr, run.stderr


PLUGIN = """
import subprocess, sys
order, root, locks, git = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "git"
if order == "before":
    import eventlet; eventlet.monkey_patch()
import cinderlib
cinderlib.setup(file_locks_path=locks, persistence_config={
    "storage": "file", "path": root, "git": git})
persistence = cinderlib.Backend.persistence
assert persistence.get_volumes() == []          # listed: the type is complete
# cinder's fake driver, imported the ordinary way: its package patches now
backend = cinderlib.Backend(volume_backend_name="fake",
                            volume_driver="cinder.tests.fake_driver.FakeLoggingVolumeDriver")
import eventlet.patcher
assert eventlet.patcher.is_monkey_patched("thread")
backend.create_volume(1, name="data")
for thread in [eventlet.spawn(backend.create_volume, 1, name=f"g{n}") for n in range(3)]:
    thread.wait()       # green threads side by side
OTHER = '''
import sys, cinderlib
cinderlib.setup(file_locks_path=sys.argv[2], persistence_config={
    "storage": "file", "path": sys.argv[1], "watch": "off"})
from cinderlib.tests.unit import utils
utils.FakeBackend(volume_backend_name="fake")
cinderlib.Volume("fake", size=2, name="other").save()
'''
subprocess.run([sys.executable, "-c", OTHER, root, locks], check=True)
assert sorted(v.name for v in persistence.get_volumes()) == ["data", "g0", "g1", "g2", "other"]
[other] = persistence.get_volumes(volume_name="other")
assert other.size == 2
persistence.close()
print("ok", eventlet.__version__)
"""


@pytest.mark.slow
@pytest.mark.cinderlib
@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("git", ["plain", "git"])
def test_the_plugin_with_cinders_fake_driver_under_eventlet(tmp_path, order, git):
    # eventlet comes with the cinderlib stack: the marker skips both (conftest)
    run = run_python(PLUGIN, order, str(tmp_path / "store"), str(tmp_path / "locks"), git,
                     check=False, env=GIT_ENV, timeout=240)
    ok = (run.stdout.split() or [""])[0]
    assert run.returncode == 0 and ok == "ok", run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]


REAL_THREAD_INSIDE = """
import sys, threading, time
from gitpersist import Store
root = sys.argv[1]
store = Store(root, watch="off")
real_sleep, inside, events = time.sleep, threading.Event(), []
patched, parked = threading.Lock(), threading.Lock()        # plain locks: never greened
patched.acquire(), parked.acquire()
def real_writer():      # a thread of before the patching, inside the write lock at it
    with store.batch("real"):
        store.put("volumes", "real", {})
        inside.set()
        patched.acquire()
        real_sleep(0.5)         # the green writer is trying meanwhile
        events.append("real out")
    parked.acquire()        # stays: ending now prints a traceback (see green.end_quietly)
threading.Thread(target=real_writer, daemon=True).start()
inside.wait()
import eventlet; eventlet.monkey_patch()
patched.release()
def green_writer():
    with store.batch("green"):
        events.append("green in")
        store.put("volumes", "green", {})
eventlet.spawn(green_writer).wait()
assert events == ["real out", "green in"], events
assert [d["id"] for d in store.all("volumes")] == ["green", "real"]
store.close()
print("ok")
"""


@pytest.mark.slow
def test_a_green_writer_waits_for_a_real_thread_inside_the_write_lock_at_the_patching(tmp_path):
    pytest.importorskip("eventlet")
    run = run_python(REAL_THREAD_INSIDE, str(tmp_path / "store"), check=False, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]


SYNCING = """
import subprocess, sys, time
order, root, remote, policy = sys.argv[1:5]
if order == "before":
    import eventlet; eventlet.monkey_patch()
from gitpersist import Store
options = {"sync_after_commit": True} if policy == "after_commit" else {"sync_every": 0.1}
store = Store(root, git=True, watch="native", fsync=False, remote="origin",
              author="a <a@x>", **options)
store.put("volumes", "a", {})
if order == "after":
    import eventlet; eventlet.monkey_patch()
import eventlet, eventlet.patcher
assert eventlet.patcher.is_monkey_patched("thread")
def writes(n):      # green threads writing side by side
    for i in range(3):
        store.put("volumes", f"g{n}{i}", {})
for thread in [eventlet.spawn(writes, n) for n in range(3)]:
    thread.wait()
def pushed():
    names = subprocess.run(["git", "-C", remote, "log", "--name-only", "--format=", "main"],
                           capture_output=True, text=True).stdout.split()
    return sum(name.startswith("meta/volumes/") for name in names)
deadline = time.monotonic() + 60        # the background thread pushes them, not close()
while pushed() < 10 and time.monotonic() < deadline:
    eventlet.sleep(0.05)
print("pushed", pushed(), flush=True)
store.close()
print("closed")
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("policy", ["after_commit", "every"])
def test_a_syncing_store_under_eventlet(clone_of, order, policy):
    """Patched after open too, the automatic syncs go on (a green thread
    takes the real one's place: gitpersist.sync.syncer) and close is quiet."""
    pytest.importorskip("eventlet")
    host = clone_of("host")
    run = run_python(SYNCING, order, str(host / "meta"), str(host.parent / "remote.git"),
                     policy, check=False, env=GIT_ENV, timeout=120)
    assert run.returncode == 0 and run.stdout.split("\n")[:2] == ["pushed 10", "closed"], \
        run.stdout + run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]


PLUGIN_SYNCING = """
import subprocess, sys, time
order, root, locks, remote = sys.argv[1:5]
if order == "before":
    import eventlet; eventlet.monkey_patch()
import cinderlib
cinderlib.setup(file_locks_path=locks, persistence_config={
    "storage": "file", "path": root, "git": True, "remote": "origin",
    "sync_after_commit": True})
persistence = cinderlib.Backend.persistence
assert persistence.get_volumes() == []
# cinder's fake driver, imported the ordinary way: its package patches now
backend = cinderlib.Backend(volume_backend_name="fake",
                            volume_driver="cinder.tests.fake_driver.FakeLoggingVolumeDriver")
import eventlet, eventlet.patcher
assert eventlet.patcher.is_monkey_patched("thread")
for thread in [eventlet.spawn(backend.create_volume, 1, name=f"g{n}") for n in range(3)]:
    thread.wait()       # green threads side by side
ids = [v.id for v in persistence.get_volumes()]
def pushed():
    names = subprocess.run(["git", "-C", remote, "log", "--name-only", "--format=", "main"],
                           capture_output=True, text=True).stdout
    return all(id in names for id in ids)
deadline = time.monotonic() + 120       # the background thread pushes them, not close()
while not pushed() and time.monotonic() < deadline:
    eventlet.sleep(0.05)
print("pushed" if pushed() else "not pushed", len(ids), flush=True)
persistence.close()
print("closed")
"""


@pytest.mark.slow
@pytest.mark.cinderlib
@pytest.mark.parametrize("order", ["before", "after"])
def test_the_plugin_syncing_under_eventlet(clone_of, tmp_path, order):
    host = clone_of("host")
    run = run_python(PLUGIN_SYNCING, order, str(host / "meta"), str(tmp_path / "locks"),
                     str(host.parent / "remote.git"), check=False, env=GIT_ENV, timeout=240)
    assert run.returncode == 0 and run.stdout.split("\n")[:2] == ["pushed 3", "closed"], \
        run.stdout + run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
