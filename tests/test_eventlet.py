"""Under eventlet, patched before the store opened or after (what Ember-CSI
and cinder's own modules do): writes work, every process's acknowledged
writes are read, close is quiet.  Real eventlet, in new interpreters (the
test process itself never patches: conftest.py)."""

from __future__ import annotations

import pytest
from helpers import GIT_ENV, run_python

STORE = """
import subprocess, sys
order, root, git, mode = sys.argv[1], sys.argv[2], sys.argv[3] == "git", sys.argv[4]
if order == "before":
    import eventlet; eventlet.monkey_patch()
from gitpersist import Store
store = Store(root, git=git, watch="native", commit_mode=mode, commit_delay=0.05)
store.put("volumes", "a", {})
assert [d["id"] for d in store.all("volumes")] == ["a"]        # the type is complete
if order == "after":
    import eventlet; eventlet.monkey_patch()
import eventlet.patcher
assert eventlet.patcher.is_monkey_patched("thread")
store.put("volumes", "b", {})
subprocess.run([sys.executable, "-c", "import sys; from gitpersist import Store; "
                "Store(sys.argv[1], watch='off').put('volumes', 'other', {})", root], check=True)
assert store.get("volumes", "other") == {"id": "other"}
assert [d["id"] for d in store.all("volumes")] == ["a", "b", "other"]
store.flush()
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
OTHER = '''
import sys, cinderlib
cinderlib.setup(file_locks_path=sys.argv[2], persistence_config={
    "storage": "file", "path": sys.argv[1], "watch": "off"})
from cinderlib.tests.unit import utils
utils.FakeBackend(volume_backend_name="fake")
cinderlib.Volume("fake", size=2, name="other").save()
'''
subprocess.run([sys.executable, "-c", OTHER, root, locks], check=True)
assert sorted(v.name for v in persistence.get_volumes()) == ["data", "other"]
[other] = persistence.get_volumes(volume_name="other")
assert other.size == 2
persistence.close()
print("ok", eventlet.__version__)
"""


def _eventlet() -> tuple[int, ...]:
    from importlib.metadata import version
    return tuple(int(part) for part in version("eventlet").split(".")[:2])


@pytest.mark.slow
@pytest.mark.cinderlib
@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("git", ["plain", "git"])
def test_the_plugin_with_cinders_fake_driver_under_eventlet(tmp_path, order, git):
    # eventlet comes with the cinderlib stack: the marker skips both (conftest)
    if order == "after" and _eventlet() >= (0, 40):
        pytest.xfail("known gap (issue 12): with eventlet >= 0.40 (the unconstrained extra; "
                     "the pinned stack has 0.33.3) patching after the store opened can "
                     "deadlock threads started before (the history's worker, watchdog's) "
                     "against the locks eventlet greens")
    run = run_python(PLUGIN, order, str(tmp_path / "store"), str(tmp_path / "locks"), git,
                     check=False, env=GIT_ENV, timeout=240)
    ok, version = (run.stdout.split() + ["", ""])[:2]
    assert run.returncode == 0 and ok == "ok", run.stderr[-4000:]
    stderr = run.stderr
    if order == "after" and tuple(map(int, version.split(".")[:2])) >= (0, 40):
        # Known, not ours: eventlet >= 0.40 (the unconstrained extra; the
        # pinned stack has 0.33.3) greens the locks it finds in the queues of
        # watchdog's threads, started before the patching, and its hub then
        # logs "Cannot switch to a different thread" for them.  Everything
        # else must stay quiet.
        head, *blocks = stderr.split("Traceback (most recent call last)")
        stderr = head + "".join("Traceback (most recent call last)" + block for block in blocks
                                if "greenlet.error: Cannot switch to a different thread"
                                not in block)
    assert "Traceback" not in stderr, run.stderr[-4000:]
