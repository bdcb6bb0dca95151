"""The benchmark workload, run in a child process of benchmarks/run.py.

One process per persistence plugin, because ``cinderlib.setup()`` is global
state.  Every operation goes through cinderlib's persistence API (the
plugin object's ``set_volume``, ``get_volumes`` ... with cinderlib Volume,
Snapshot and Connection objects), except the floor, which is plain Python
and runs inside the ``file`` plugin's process, each floor write right
after the plugin's write of the same record: both see the same machine
load, so their ratio holds on a busy machine too.  The functions return
``{op: [seconds, ...]}`` plus extra figures; the parent turns the samples
into medians and ratios.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

# plugin name -> (label, persistence_config(workdir), store options for notes)
PLUGINS: dict[str, tuple[str, Callable[[str], dict[str, Any]] | None]] = {
    "memory": ("cinderlib memory", lambda w: {"storage": "memory"}),
    "db": ("cinderlib db (SQLite file)",
           lambda w: {"storage": "db", "connection": f"sqlite:///{w}/cinderlib.sqlite"}),
    "file": ("gitpersist plain, fsync",
             lambda w: {"storage": "file", "path": f"{w}/store"}),
    "file-nofsync": ("gitpersist plain, no fsync",
                     lambda w: {"storage": "file", "path": f"{w}/store", "fsync": False}),
    "git": ("gitpersist git, commit per write",
            lambda w: {"storage": "file", "path": f"{w}/store", "git": True,
                       "author": "bench <bench@example.com>"}),
    "git-async": ("gitpersist git, batched (commit_mode=async)",
                  lambda w: {"storage": "file", "path": f"{w}/store", "git": True,
                             "commit_mode": "async",
                             "author": "bench <bench@example.com>"}),
}
COLD_PLUGINS = ("db", "file", "file-nofsync", "git", "git-async")
GIT_PLUGINS = ("git", "git-async")
FLOOR_LABEL = "floor: serialise + atomic write + fsync (plain Python)"


def backend_name(i: int, backends: int) -> str:
    return f"backend-{i % backends:03d}"


def volume_name(i: int) -> str:
    return f"vol-{i:06d}"


def prepare_cinderlib(workdir: str) -> None:
    """cinder's state and lock files in `workdir`, not the current folder."""
    from cinder.common import config  # noqa: F401  (registers state_path)
    from oslo_config import cfg
    cfg.CONF.set_override("state_path", workdir)


def setup(plugin: str, workdir: str) -> Any:
    import cinderlib
    prepare_cinderlib(workdir)
    cinderlib.setup(persistence_config=PLUGINS[plugin][1](workdir),
                    file_locks_path=os.path.join(workdir, "locks"),
                    fail_on_missing_backend=False, disable_logs=True)
    return cinderlib.Backend.persistence


class Samples(dict):
    """op -> list of durations in seconds."""

    def time(self, op: str, fn: Callable[[Any], Any], items: Iterable[Any], *,
             budget: float = float("inf"), minimum: int = 3) -> list[Any]:
        """Run ``fn(item)`` for each item, timing each call, until the items
        run out or `budget` seconds are spent (at least `minimum` calls)."""
        samples = self.setdefault(op, [])
        results = []
        started = time.perf_counter()
        for item in items:
            t0 = time.perf_counter()
            results.append(fn(item))
            samples.append(time.perf_counter() - t0)
            if len(results) >= minimum and time.perf_counter() - started > budget:
                break
        return results


def run_plugin(plugin: str, workdir: str, n: int, backends: int, sample: int,
               budget: float, seed: int = 7) -> dict[str, Any]:
    """The whole workload on one plugin; leaves `n` volumes stored."""
    import cinderlib
    from cinderlib.tests.unit import utils as cl_utils

    t0 = time.perf_counter()
    persistence = setup(plugin, workdir)
    samples = Samples(setup=[time.perf_counter() - t0])
    for b in range(backends):
        cl_utils.FakeBackend(volume_backend_name=backend_name(b, backends))
    rng = random.Random(seed)
    extra: dict[str, Any] = {}
    floor = Floor(workdir) if plugin == "file" else None

    def paired(op: str, fn: Callable[[Any], Any], items: list[Any],
               floor_fn: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Time fn(item) for each item, each followed (with the floor on)
        by the floor's write of the same record."""
        for item in items:
            samples.time(op, fn, [item])
            if floor is not None:
                floor.samples.time(op, floor_fn or floor.write, [floor.record(item)])

    def new_volume(i: int) -> Any:
        return cinderlib.Volume(cinderlib.Backend.backends[backend_name(i, backends)],
                                name=volume_name(i), size=1 + i % 10)

    # create: only set_volume is timed, not building the cinderlib object
    volumes = [new_volume(i) for i in range(n)]
    paired("create", persistence.set_volume, volumes)

    # one snapshot and one connection on every 10th volume
    with_children = volumes[::10]
    snapshots = [cinderlib.Snapshot(v, name=f"snap-{v.name}") for v in with_children]
    samples.time("snapshot create", persistence.set_snapshot, snapshots)
    connections = [cinderlib.Connection(v.backend, volume=v, connection_info={
        "conn": {"driver_volume_type": "iscsi", "data": {"target_lun": 1}},
        "connector": {"host": "node1", "initiator": "iqn.1993-08.org.debian:01:node1"}})
        for v in with_children]
    samples.time("connection create", persistence.set_connection, connections)

    # The same volumes twice: first the first read of each since its save,
    # then warm.
    picked = rng.sample(range(n), min(sample, n))
    for op in ("get by id, first read after save", "get by id"):
        results = samples.time(op, lambda i: persistence.get_volumes(
            volume_id=volumes[i].id), picked, budget=budget)
        assert all(len(r) == 1 for r in results), f"{op}: wrong answer"
        picked = picked[:len(results)]
    results = samples.time("get by name", lambda i: persistence.get_volumes(
        volume_name=volume_name(i)), picked, budget=budget)
    assert all(len(r) == 1 for r in results), "get by name: wrong answer"
    results = samples.time("get by backend", lambda b: persistence.get_volumes(
        backend_name=backend_name(b, backends)),
        [rng.randrange(backends) for _ in range(sample)], budget=budget)
    assert all(len(r) in (n // backends, n // backends + 1) for r in results), \
        "get by backend: wrong answer"
    extra["volumes per backend"] = n / backends
    # db lists 2,000 volumes in ~15 s: at large N one call may be all the budget allows
    results = samples.time("list all", lambda _: persistence.get_volumes(),
                           range(max(3, sample // 10)), budget=budget, minimum=1)
    assert all(len(r) == n for r in results), "list all: wrong answer"
    parents = [rng.choice(with_children) for _ in range(sample)]
    results = samples.time("snapshots by volume", lambda v: persistence.get_snapshots(
        volume_id=v.id), parents, budget=budget)
    assert all(len(r) == 1 for r in results), "snapshots by volume: wrong answer"
    results = samples.time("connections by volume", lambda v: persistence.get_connections(
        volume_id=v.id), parents, budget=budget)
    assert all(len(r) == 1 for r in results), "connections by volume: wrong answer"

    def update(volume: Any) -> None:
        # cinderlib objects change their state through the OVO (as cinderlib does)
        volume._ovo.status = "available" if volume.status != "available" else "in-use"
        persistence.set_volume(volume)

    updated = [volumes[i] for i in rng.sample(range(n), min(sample, n))]
    paired("update", update, updated)

    if plugin == "file":
        # The same batch as the git modes' below, without git.
        batch = [volumes[i] for i in rng.sample(range(n), min(sample, n))]
        t0 = time.perf_counter()
        with persistence.store.batch("benchmark: batch of updates"):
            for volume in batch:
                update(volume)
        extra["batched writes/s"] = len(batch) / (time.perf_counter() - t0)

    if plugin in GIT_PLUGINS:
        store = persistence.store
        t0 = time.perf_counter()
        store.flush()
        samples["flush"] = [time.perf_counter() - t0]
        # Versioned write throughput: `sample` updates, then everything
        # committed (the Store.batch block, or async mode's flush).
        batch = [volumes[i] for i in rng.sample(range(n), min(sample, n))]
        t0 = time.perf_counter()
        if plugin == "git":
            with store.batch("benchmark: batch of updates"):
                for volume in batch:
                    update(volume)
            extra["versioned writes/s how"] = "Store.batch: updates in one block, one commit"
        else:
            for volume in batch:
                update(volume)
            store.flush()
            extra["versioned writes/s how"] = "commit_mode=async: updates, then flush()"
        extra["versioned writes/s"] = len(batch) / (time.perf_counter() - t0)
    if plugin == "git":
        extra["group commit"] = group_commit(update, volumes, rng, min(100, sample, n))

    # delete a sample, then put volumes back (untimed) so that `n` stay
    # stored for the cold open.
    doomed = [i for i in rng.sample(range(n), min(sample, n)) if i % 10]
    paired("delete", persistence.delete_volume, [volumes[i] for i in doomed],
           floor and floor.delete)
    for i in doomed:
        persistence.set_volume(new_volume(i))

    if plugin in GIT_PLUGINS:
        persistence.store.flush()
    kept = 10 * rng.randrange(len(with_children))      # never deleted
    probe = {"id": volumes[kept].id, "name": volume_name(kept), "all": str(n)}
    if hasattr(persistence, "close"):
        persistence.close()
    return {"samples": samples, "extra": extra, "probe": probe,
            "floor": None if floor is None else floor.close()}


def group_commit(update: Callable[[Any], None], volumes: list[Any], rng: random.Random,
                 count: int) -> dict[str, float]:
    """Versioned writes per second (a commit each) of one writer thread,
    then of four threads writing `count` updates of other volumes between
    them: what sharing a commit's fsyncs between writers gains."""
    import threading
    rates = {}
    for writers in (1, 4):
        chosen = [volumes[i] for i in rng.sample(range(len(volumes)), count)]
        shares = [chosen[k::writers] for k in range(writers)]
        threads = [threading.Thread(target=lambda share=share: [update(v) for v in share])
                   for share in shares]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates[f"{writers} writers/s"] = count / (time.perf_counter() - t0)
    return rates


class Floor:
    """What any durable one-file-per-record store must do: serialise the
    record (the bytes the file plugin writes), write a temp file, fsync it,
    rename it over the target, fsync the folder."""

    def __init__(self, workdir: str) -> None:
        import orjson
        from gitpersist import encoding
        self._dumps = orjson.dumps
        self._options = encoding._DUMP_OPTIONS
        folder = os.path.join(workdir, "floor")
        os.mkdir(folder)
        self._dir = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        self.samples = Samples()

    @staticmethod
    def record(volume: Any) -> dict[str, Any]:
        """The volume's record (made untimed: only writing it is the floor)."""
        from gitpersist.cinder.records import volume_record
        return {**volume_record(volume._ovo), "id": volume.id}

    def write(self, doc: dict[str, Any]) -> None:
        data = self._dumps(doc, option=self._options)
        name = doc["id"] + ".json"
        temp = "." + name + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=self._dir)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        os.fsync(self._dir)

    def delete(self, doc: dict[str, Any]) -> None:
        os.unlink(doc["id"] + ".json", dir_fd=self._dir)
        os.fsync(self._dir)

    def close(self) -> dict[str, list[float]]:
        os.close(self._dir)
        return self.samples


def cold_open(plugin: str, workdir: str, query: str, value: str,
              started: float) -> dict[str, Any]:
    """A new process's first answer: `started` is the process start (before
    cinderlib was imported)."""
    import cinderlib  # noqa: F401
    imported = time.perf_counter()
    persistence = setup(plugin, workdir)
    opened = time.perf_counter()
    if query == "id":
        found = persistence.get_volumes(volume_id=value)
    elif query == "name":
        found = persistence.get_volumes(volume_name=value)
    else:       # "all": every volume, `value` of them
        found = persistence.get_volumes()
    answered = time.perf_counter()
    if len(found) != (1 if query != "all" else int(value)):
        raise SystemExit(f"cold open of {plugin}: {query}={value!r} found {len(found)} volumes")
    return {"import": imported - started, "setup": opened - imported,
            "query": answered - opened, "open to answer": answered - imported,
            "process to answer": answered - started, "persistence": persistence}
