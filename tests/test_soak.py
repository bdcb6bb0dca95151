"""Load: several processes mixing reads and writes on one store for a while
(plain and git), and a long-running process whose memory, descriptors,
threads and child processes stay flat; `close()` releases everything.

GITPERSIST_SOAK_SECONDS sets how long each soak runs (default 15 s)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from gitpersist import Store, fsck
from helpers import GIT_ENV, eventually, git, start_python

SOAK_SECONDS = float(os.environ.get("GITPERSIST_SOAK_SECONDS", "15"))


@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


# -- soak ------------------------------------------------------------------------------

WORKER = """
import json, random, sys, time
from gitpersist import ABSENT, ConflictError, Store
root, me, seconds, use_git = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
rng = random.Random(me)
mine, increments, reads = {}, 0, 0
with Store(root, git=use_git, fsync=False, indexes={"items": {"owner": None}}) as store:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.35:                     # write or delete one of my records
            id = f"{me}-{rng.randrange(20)}"
            if rng.random() < 0.2:
                store.delete("items", id)
                mine.pop(id, None)
            else:
                doc = {"owner": me, "n": rng.randrange(10**6), "pad": "x" * rng.randrange(3000)}
                store.put("items", id, doc)
                mine[id] = doc
        elif roll < 0.5:                    # a shared counter, read-modify-write
            name = f"c{rng.randrange(3)}"
            while True:
                current = store.get("counters", name)
                try:
                    if current is None:
                        store.put("counters", name, {"value": 1}, expect=ABSENT)
                    else:       # the revision of what was read (revision() reads again)
                        store.put("counters", name, {"value": current["value"] + 1},
                                  expect=store.revision_of("counters", current))
                    increments += 1
                    break
                except ConflictError:
                    continue
        elif roll < 0.75:                   # my records, from the index and by id
            found = {d["id"]: d for d in store.find("items", owner=me)}
            expected = {id: {**doc, "id": id} for id, doc in mine.items()}
            assert found == expected, (me, sorted(found), sorted(expected))
            reads += 1
        else:                               # anybody's records: whole, never torn
            for doc in store.all("items"):
                assert doc["pad"] == "x" * len(doc["pad"]) and doc["owner"]
            reads += 1
print(json.dumps({"mine": mine, "increments": increments, "reads": reads}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_soak_several_processes(tmp_path, use_git):
    root = str(tmp_path / "store")
    Store(root, git=use_git, watch="off").close()
    workers = [start_python(WORKER, root, f"w{n}", str(SOAK_SECONDS), "1" if use_git else "0")
               for n in range(3)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=SOAK_SECONDS + 120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    with Store(root, git=use_git, watch="off") as store:
        counters = sum(doc["value"] for doc in store.all("counters"))
        assert counters == sum(r["increments"] for r in results)     # no lost update
        items = {doc["id"]: doc for doc in store.all("items")}
        expected = {id: {**doc, "id": id} for r in results for id, doc in r["mine"].items()}
        assert items == expected
    assert all(r["reads"] > 0 and r["increments"] > 0 for r in results)
    problems = fsck.check(root, git=use_git)
    assert fsck.clean(problems), [str(p) for p in problems]
    if use_git:
        assert git(root, "status", "--porcelain") == ""
        with Store(root, git=True, watch="off") as store:   # HEAD holds the files
            for id, doc in expected.items():
                assert store.get_at("items", id, "HEAD") == doc


# -- a long-running process -------------------------------------------------------------

def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def children() -> set[int]:
    found = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as file:
            found.update(int(pid) for pid in file.read().split())
    return found


def workload(store: Store, rounds: int, start: int = 0) -> None:
    """Writes, reads, queries and history lookups, over a fixed set of ids
    (so the store itself does not grow)."""
    for n in range(start, start + rounds):
        id = f"v{n % 50}"
        store.put("volumes", id, {"n": n, "display_name": f"name{n % 7}", "pad": "p" * 500})
        assert store.get("volumes", id)["n"] == n
        store.find("volumes", display_name=f"name{n % 7}")
        if n % 10 == 0:
            store.delete("volumes", f"v{(n + 25) % 50}")
            store.all("volumes")
        if store.history is not None and n % 50 == 0:
            store.versions("volumes", id, limit=3)
            store.get_at("volumes", id, "HEAD")


def settle(store: Store) -> None:
    """Let the background work of the writes so far finish: commits and the
    index update, and the watcher's events (native: inotify, read by the
    read below, no thread; polling: watchdog's thread, whose lag and
    backlog of events would look like growth)."""
    store.flush()
    observer = getattr(store._watcher, "_observer", None)
    if observer is not None:
        time.sleep(1)
        assert eventually(lambda: observer.event_queue.unfinished_tasks == 0)
    store.get("volumes", "v0")      # drains and applies the paths the events named
    gc.collect()


@pytest.mark.slow
@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_memory_and_descriptors_stay_flat(tmp_path, use_git):
    """After a warm-up that fills every bounded cache, 1500 more rounds of
    work leave the Python heap, the RSS and the open descriptors where they
    were: a leak of even a small object per write or commit shows."""
    with Store(tmp_path / "store", git=use_git, fsync=False,
               indexes={"volumes": {"display_name": None}}) as store:
        if store.history is not None:
            store.history.gc_every = 10 ** 9   # a gc child would come and go
            store.history.tree_cache_size = 64  # full after the warm-up
        tracemalloc.start()
        try:
            workload(store, 300)
            settle(store)
            heap, rss, fds = tracemalloc.get_traced_memory()[0], rss_kib(), fd_count()
            workload(store, 1500, start=300)
            settle(store)
            grown = tracemalloc.get_traced_memory()[0] - heap
        finally:
            tracemalloc.stop()
        assert grown < 64 * 1024, f"{grown} bytes more after 1500 rounds"
        assert fd_count() - fds <= 1, open_fds()
        assert rss_kib() - rss < 16 * 1024


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
@pytest.mark.parametrize("watch", ["native", "polling"])
def test_close_releases_everything(tmp_path, use_git, watch):
    def one_store(n: int) -> None:
        store = Store(tmp_path / "store", git=use_git, watch=watch, poll_interval=0.05,
                      fsync=False)
        store.put("volumes", f"v{n}", {"n": n})
        store.find("volumes")
        if use_git:
            store.versions("volumes", f"v{n}")
            store.get_at("volumes", f"v{n}", "HEAD")      # git cat-file processes
        store.close()

    one_store(0)                                         # imports, first-use caches
    gc.collect()
    fds, threads, kids = open_fds(), set(threading.enumerate()), children()
    for n in range(1, 11):
        one_store(n)
    gc.collect()
    assert open_fds() == fds
    assert set(threading.enumerate()) == threads
    assert children() <= kids


DROPPED = """
import sys
from gitpersist import Store
store = Store(sys.argv[1], git=True, commit_mode="async", commit_delay=3600)
store.put("volumes", "v1", {"n": 1})
store.versions("volumes", "v1")         # starts git's cat-file processes
print("exiting", flush=True)
"""


def test_a_store_dropped_without_close_commits_and_leaves_nothing_at_exit(tmp_path):
    """A process that forgets close() still commits what it queued (an
    atexit hook closes the history) and leaves no git child behind."""
    root = str(tmp_path / "store")
    run = subprocess.run([sys.executable, "-c", DROPPED, root], capture_output=True,
                         text=True, timeout=60, env={**os.environ, **GIT_ENV})
    assert run.returncode == 0 and run.stdout == "exiting\n", run.stderr
    assert git(root, "log", "-1", "--format=%s").strip() == "volumes v1: created"
    assert git(root, "status", "--porcelain") == ""
