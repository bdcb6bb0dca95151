"""gitpersist.sync.syncer: the policies, the background thread, the sync
lock and the attempt loop, with the remote and the integration handed in
as fakes (tests/test_sync.py runs the real ones)."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager

import pytest
from helpers import eventually, run_python

from gitpersist import ConfigError, Store, SyncError
from gitpersist.sync import Syncer

pytestmark = pytest.mark.usefixtures("no_git_identity")

REMOTE_HEAD = "f" * 40


class Port:
    """A StorePort over a real store (git, no remote) that counts flushes
    and knows whether the write lock is held."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root
        self.options = store.options
        self.flushes = 0
        self.inside = 0

    @property
    def history(self):
        return self.store.history

    def flush(self):
        self.flushes += 1
        self.store.flush()

    @contextmanager
    def exclusive(self):
        with self.store.exclusive():
            self.inside += 1
            try:
                yield
            finally:
                self.inside -= 1

    def apply_received(self, relpath, data):
        self.store.apply_received(relpath, data)

    def adopt_format(self):
        return self.store.adopt_format()


class FakeLink:
    """The remote: `pushes` answers the pushes in turn; `failures` fetches
    fail first."""
    url = "fake://remote"

    def __init__(self, pushes=(), failures=0):
        self.answers = list(pushes)
        self.failures = failures
        self.fetched, self.pushed, self.refreshed = [], [], 0
        self.lock = threading.Lock()

    def refresh(self, error=SyncError):
        self.refreshed += 1
        return self.url

    def upstream(self, ref):
        return ref

    def fetch(self, remote_ref):
        with self.lock:
            self.fetched.append(remote_ref)
            if self.failures:
                self.failures -= 1
                raise SyncError("sync with remote 'origin': unreachable (fake)")
        return REMOTE_HEAD

    def push(self, commit, remote_ref, expected):
        assert expected == REMOTE_HEAD
        self.pushed.append(commit)
        return self.answers.pop(0) if self.answers else True


class FakeIntegrator:
    """Integrates by answering `head`; records (remote head, attempts,
    write lock held)."""

    def __init__(self, port, head="e" * 40):
        self.port, self.head, self.calls = port, head, []

    def integrate(self, ref, remote_head, report, *, attempts):
        assert ref.startswith("refs/heads/")
        self.calls.append((remote_head, attempts, self.port.inside))
        return self.head


@pytest.fixture
def port(tmp_path):
    with Store(tmp_path / "host" / "meta", git=True, watch="off", fsync=False,
               author="a <a@x>") as store:
        store.put("volumes", "v1", {})
        yield Port(store)


def syncer_of(port, link=None, integrator=None, **policies):
    return Syncer(port, "origin", link=link or FakeLink(),
                  integrator=integrator or FakeIntegrator(port), **policies)


def test_a_rejected_push_goes_round_again_up_to_attempts(port, monkeypatch):
    monkeypatch.setattr(Syncer, "attempts", 3)
    link, integrator = FakeLink(pushes=[False] * 3), FakeIntegrator(port)
    syncer = syncer_of(port, link, integrator)
    with pytest.raises(SyncError, match=r"'origin' \(fake://remote\): the push was rejected "
                                        "3 times .* local commits are kept"):
        syncer.sync()
    assert integrator.calls == [(REMOTE_HEAD, 3, 1)] * 3     # under the write lock
    assert len(link.fetched) == 3 and link.refreshed == 1
    syncer.close()


def test_a_push_accepted_on_the_second_round_is_reported(port):
    link = FakeLink(pushes=[False, True])
    syncer = syncer_of(port, link)
    report = syncer.sync()
    assert (report.pushed, report.attempts, report.head, report.remote_head) == (
        True, 2, "e" * 40, REMOTE_HEAD)
    assert report.before == port.store.history.refs.read_ref(
        port.store.history.refs.head_ref())
    assert port.flushes >= 1
    syncer.close()


def test_nothing_to_push_when_the_branch_is_the_remotes(port):
    link = FakeLink()
    syncer = syncer_of(port, link, FakeIntegrator(port, head=REMOTE_HEAD))
    report = syncer.sync()
    assert not report.pushed and link.pushed == [] and report.attempts == 1
    syncer.close()


def test_after_commit_syncs_in_the_background_and_close_ends_the_thread(port):
    threads = set(threading.enumerate())
    link = FakeLink()
    syncer = syncer_of(port, link, after_commit=True)
    assert link.fetched == []
    syncer.committed()
    assert eventually(lambda: link.pushed == ["e" * 40])
    syncer.close()
    assert set(threading.enumerate()) <= threads
    with pytest.raises(SyncError, match="store is closed"):
        syncer.sync()


def test_a_failed_automatic_sync_is_logged_and_retried_after_retry_delay(port, caplog):
    link = FakeLink(failures=2)
    syncer = syncer_of(port, link, after_commit=True)
    syncer.retry_delay = 0.05
    syncer.committed()
    assert eventually(lambda: link.pushed == ["e" * 40])
    assert len(link.fetched) == 3
    assert caplog.text.count("automatic sync with 'origin' failed, retrying") == 2
    syncer.close()


def test_every_syncs_periodically_until_close(port):
    link = FakeLink()
    syncer = syncer_of(port, link, every=0.05)
    assert eventually(lambda: len(link.fetched) >= 3)
    syncer.close()
    count = len(link.fetched)
    threading.Event().wait(0.2)
    assert len(link.fetched) == count


def test_close_sends_unsent_commits_once(port):
    link = FakeLink(failures=1)
    syncer = syncer_of(port, link, after_commit=True)
    syncer.retry_delay = 60.0           # the thread would retry only in a minute
    syncer.committed()
    assert eventually(lambda: len(link.fetched) == 1)
    syncer.close()                      # the thread ends; close sends what is unsent
    assert link.pushed == ["e" * 40] and len(link.fetched) == 2
    syncer.close()
    assert len(link.fetched) == 2


def test_a_sync_on_open_that_fails_is_logged(port, caplog):
    syncer = syncer_of(port, FakeLink(failures=1), on_open=True)
    assert "sync on open failed, the store opens anyway" in caplog.text
    syncer.close()


def test_the_sync_lock_of_another_process_fails_the_sync_after_lock_timeout(port):
    syncer = syncer_of(port)
    assert syncer.lock_file == os.path.join(port.store.history.common_dir,
                                            "gitpersist-sync.lock")
    fd = os.open(syncer.lock_file, os.O_RDONLY | os.O_CREAT)     # another open file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        syncer.lock_timeout = 0.2       # read at each sync
        with pytest.raises(SyncError, match=r"gitpersist-sync.lock still held by another "
                                            r"process after 0.2 s"):
            syncer.sync()
    finally:
        os.close(fd)
    assert syncer.sync().pushed
    syncer.close()


def test_one_sync_at_a_time_in_a_process(port):
    inside, most = [0], [0]

    class Slow(FakeIntegrator):
        def integrate(self, *args, **kwargs):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            threading.Event().wait(0.05)
            inside[0] -= 1
            return super().integrate(*args, **kwargs)
    syncer = syncer_of(port, integrator=Slow(port))
    threads = [threading.Thread(target=syncer.sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    syncer.close()


def test_a_store_without_history_cannot_sync(port):
    class NoHistory(Port):
        history = None
    with pytest.raises(ConfigError, match="needs git true"):
        Syncer(NoHistory(port.store), "origin")


EVENTLET = """
import os, subprocess, sys, time
import eventlet                 # imported, not patching yet
from gitpersist import Store
from gitpersist.sync import Syncer
store = Store(sys.argv[1], git=True, watch="off", fsync=False, author="a <a@x>")
syncer = Syncer(store, "origin", after_commit=True)     # its thread starts before the patching
store.put("volumes", "v1", {"n": 1})
print("pushed" if syncer.sync().pushed else "not pushed", flush=True)
eventlet.monkey_patch()
store.put("volumes", "v2", {"n": 2})    # a green thread takes the real one's place...
syncer.committed()              # (what a store does after a commit): ...and pushes it
remote, deadline = sys.argv[2], time.monotonic() + 60
def remote_has_v2():
    return "v2.json" in subprocess.run(["git", "-C", remote, "log", "--name-only", "main"],
                                       capture_output=True, text=True).stdout
while not remote_has_v2() and time.monotonic() < deadline:
    time.sleep(0.05)            # green: the syncer's green thread runs meanwhile
print("pushed in the background" if remote_has_v2() else "not pushed", flush=True)
overlap, inside = [], []

def write_lock():               # the store's write lock, made again green
    with store.exclusive():
        inside.append(1)
        overlap.append(len(inside))
        eventlet.sleep(0.01)
        inside.pop()
reports = []
greenlets = [eventlet.spawn(lambda: reports.append(syncer.sync())) for _ in range(3)]
greenlets += [eventlet.spawn(write_lock) for _ in range(3)]
with eventlet.Timeout(60):
    for greenlet in greenlets:
        greenlet.wait()
print(len(reports), "synced", max(overlap), "inside", flush=True)
syncer.close()
time.sleep(0.3)                 # a thread ending now would print a traceback
print("closed", flush=True)
sys.stderr.flush()
os._exit(0)                     # the history's own threads and conditions predate it too
"""


def test_after_eventlet_patched_threading_syncs_run_green_and_close_leaves_the_thread(
        clone_of, bare_remote):
    """eventlet patches threading after the syncer (its thread, its mutex,
    its sync lock) was made: a green thread takes the real one's place and
    pushes the next commit, greenlets' syncs take turns and succeed, and
    the real thread, parked, is not stopped at close (no traceback)."""
    pytest.importorskip("eventlet")
    host = clone_of("a")
    run = run_python(EVENTLET, str(host / "meta"), str(bare_remote), check=False, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[:4] == ["pushed", "pushed in the background",
                                          "3 synced 1 inside", "closed"], run.stdout
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
