"""A store beside the git commands an ops team runs (issue 14): ``git
gc``, ``git repack -a -d``, ``git gc --prune=now``, ``git prune --expire=now`` and ``git
gc --aggressive --prune=now`` run in a loop while a writer commits, in sync
and async mode: ``git fsck --strict`` stays clean, every acknowledged write
is in HEAD, and no write is reported failed (`gitpersist.history.objects`:
keep files and temp names git's prune does not sweep)."""

from __future__ import annotations

import subprocess
import threading

import orjson
import pytest

from gitpersist import Store, paths
from helpers import fsck_clean, git

COMMANDS = {
    "repack": ["repack", "-a", "-d", "-q"],
    "gc": ["gc", "--quiet"],
    "gc-prune": ["gc", "--prune=now", "--quiet"],
    "prune": ["prune", "--expire=now"],
    "aggressive": ["gc", "--aggressive", "--prune=now", "--quiet"],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_writes_beside_a_git_housekeeping_loop(tmp_path, no_git_identity, command, mode):
    root = tmp_path / "store"
    written: dict[str, int] = {}
    failures: list[BaseException] = []
    stop = threading.Event()
    with Store(root, git=True, watch="off", fsync=False, commit_mode=mode,
               commit_delay=0.01) as store:
        store.history.repack_every = store.history.gc_every = 1 << 40   # git's only

        def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    store.put("volumes", f"v{n % 40}", {"n": n})
                except BaseException as exc:     # noqa: BLE001 (the test reports it)
                    failures.append(exc)
                    return
                written[f"v{n % 40}"] = n

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for _ in range(12):        # bounded: a dozen runs of the command
                run = subprocess.run(["git", *COMMANDS[command]], cwd=root,
                                     capture_output=True, text=True)
                assert run.returncode == 0, run.stderr
        finally:
            stop.set()
            thread.join()
        store.flush()
    assert not failures, failures
    assert written
    for id, n in written.items():
        head = orjson.loads(git(root, "show", f"HEAD:{paths.record_path('volumes', id)}"))
        assert head["n"] == n, id
    fsck_clean(root)
    git(root, "log", "--oneline")
