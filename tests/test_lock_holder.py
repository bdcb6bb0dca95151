"""Who holds the write lock (issue 14): `LockTimeout` and fsck name the
holder, pid, host and since when, for a holder that was SIGSTOPped; a
holder file naming a process that is gone is not believed
(`gitpersist.locking.holder_of`)."""

from __future__ import annotations

import datetime
import os
import re
import signal
import socket
import subprocess

import pytest

from gitpersist import LockTimeout, Store, fsck, locking
from gitpersist.files import HOST
from test_faults import holder  # noqa: F401 (a fixture)

@pytest.fixture
def stopped_holder(holder):  # noqa: F811 (the fixture imported above)
    """Another process holding the store's write lock (test_faults'
    `holder`), SIGSTOPped; it is killed at the end."""
    root, proc = holder
    os.kill(proc.pid, signal.SIGSTOP)
    return root, proc


def holder_pattern(pid: int) -> str:
    return (rf"pid {pid} on host {re.escape(socket.gethostname())} since "
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def test_lock_timeout_and_fsck_name_a_stopped_holder(stopped_holder):
    root, proc = stopped_holder
    started = datetime.datetime.now(datetime.timezone.utc)
    with Store(root, watch="off", lock_timeout=0.2) as store:
        with pytest.raises(LockTimeout, match=r"\(lock_timeout\): held by "
                                              + holder_pattern(proc.pid)) as caught:
            store.put("volumes", "v1", {})
    since = re.search(r"since (\S+ \S+) UTC", str(caught.value)).group(1)
    when = datetime.datetime.fromisoformat(since).replace(tzinfo=datetime.timezone.utc)
    assert abs((started - when).total_seconds()) < 120
    [note] = [p for p in fsck.check(root, git=False) if p.kind == "locked"]
    assert re.search(r"held by a running writer \(" + holder_pattern(proc.pid) + r"\)",
                     note.message), note.message
    with pytest.raises(LockTimeout, match="to repair the store: held by "
                                          + holder_pattern(proc.pid)):
        fsck.check(root, git=False, repair=True, lock_timeout=0.2)


def test_a_holder_file_of_a_process_that_is_gone_is_not_believed(tmp_path):
    lock = str(tmp_path / "write.lock")
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(locking.holder_path(lock), "w") as file:
        file.write(f"{dead.pid} {HOST} 1700000000.0 somehost\n")
    assert locking.holder_of(lock) is None and locking.held_by(lock) == ""
    with open(locking.holder_path(lock), "w") as file:      # another host's: believed
        file.write(f"{dead.pid} 0badcafe 1700000000.0 otherhost\n")
    assert locking.holder_of(lock) == \
        f"pid {dead.pid} on host otherhost since 2023-11-14 22:13:20 UTC"
    for junk in ("", "garbage\n", "1 2 x host\n"):
        with open(locking.holder_path(lock), "w") as file:
            file.write(junk)
        assert locking.holder_of(lock) is None


def test_the_holder_file_is_this_process_while_it_writes(tmp_path):
    with Store(tmp_path, watch="off") as store:
        with store.batch("look"):
            store.put("volumes", "v1", {})
            assert locking.holder_of(str(tmp_path / ".gitpersist" / "write.lock")) \
                .startswith(f"pid {os.getpid()} on host ")
    assert not [p for p in fsck.check(tmp_path, git=False) if p.kind == "unknown-file"]
