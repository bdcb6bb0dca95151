"""Cost of a versioned write against the size of the store.

Prints, for stores of 1k and 20k records (and 100k with --big): the time of
one ``Store.put`` of an existing record with ``git=True`` (the write and its
commit) and the commit's share of it, as median and 90th percentile, in
sync and async commit mode, with and without fsync; the 20k/1k ratios; and
cinderlib's db plugin ``set_volume`` (one volume updated in a sqlite file,
no history) for comparison.

The machine may be shared, so the measurements are interleaved: each round
writes one record in every store and asks a cinderlib child process for one
``set_volume``, in a rotating order; all of them see the same load.

In async mode `put` returns before the commit: "write" is what the caller
waits for; "amortized" is (all the puts + the final flush) / number of puts.
"index" is one background ``git update-index`` run for one path (the work
taken out of each commit and done every `History.index_delay` seconds).

    .venv/bin/python benchmarks/commit_scaling.py [--big] [--writes N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from gitpersist import Store
from gitpersist.history import History

MODES = [("sync", False), ("sync", True), ("async", False), ("async", True)]


def quantiles(samples: list[float]) -> tuple[float, float]:
    """(median, p90) in ms."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(0.9 * (len(ordered) - 1))] * 1e3


def populate(folder: str, count: int) -> list[str]:
    """A git store of `count` volume records; returns their ids."""
    ids = [str(uuid.UUID(int=i + 1)) for i in range(count)]
    with Store(folder, watch="off", fsync=False) as store:
        for n, id in enumerate(ids):
            store.put("volumes", id, {"display_name": f"vol-{n}", "size": 1,
                                      "status": "available", "host": "node@lvm#pool"})
    subprocess.run(["git", "init", "-q", folder], check=True)
    started = time.perf_counter()
    Store(folder, watch="off", git=True, fsync=False).close()   # recovery: one commit
    print(f"  {count} records: first open with git (commits them all) "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return ids


class CommitTimer:
    """Times History.record per store: the commit share of a sync put."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.original = History.record

    def __enter__(self) -> CommitTimer:
        original, samples = self.original, self.samples

        def record(history, changes, message):
            started = time.perf_counter()
            original(history, changes, message)
            samples.setdefault(history.root, []).append(time.perf_counter() - started)

        History.record = record
        return self

    def __exit__(self, *exc) -> None:
        History.record = self.original


class DbPlugin:
    """cinderlib's db plugin in a child process (cinder's test helpers patch
    the process with eventlet on import): one set_volume per `write()`."""

    def __init__(self, volumes: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--db-child", str(volumes)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the cinderlib child did not start")
        self.samples: list[float] = []

    def write(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.samples.append(float(self.proc.stdout.readline()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def db_child(count: int) -> None:
    import cinderlib
    from cinderlib.tests.unit import utils
    folder = tempfile.mkdtemp(prefix="bench-cinderlib-")
    try:
        cinderlib.Backend.global_initialization = False
        cinderlib.setup(persistence_config={
            "storage": "db", "connection": "sqlite:///" + os.path.join(folder, "db.sqlite")})
        backend = utils.FakeBackend(volume_backend_name="fake")
        persistence = cinderlib.Backend.persistence
        volumes = []
        for n in range(count):
            volume = cinderlib.Volume(backend, size=1, name=f"vol-{n}")
            persistence.set_volume(volume)
            volumes.append(volume)
        print("ready", flush=True)
        for n, _ in enumerate(sys.stdin):
            volume = volumes[(n * 7) % count]
            volume._ovo.status = "in-use" if n % 2 else "available"
            started = time.perf_counter()
            persistence.set_volume(volume)
            print(time.perf_counter() - started, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(stores: dict[int, str], ids: dict[int, list[str]], writes: int, mode: str,
            fsync: bool, db: DbPlugin | None) -> dict[int, dict]:
    """One (mode, fsync) cell for every store size, writes interleaved."""
    opened = {size: Store(folder, watch="off", git=True, fsync=fsync, commit_mode=mode,
                          author="bench <bench@example.com>")
              for size, folder in stores.items()}
    try:
        targets, docs = {}, {}
        for size, store in opened.items():
            for id in ids[size][:20]:       # warm up
                store.put("volumes", id, {**store.get("volumes", id), "status": f"warm {time.time()}"})
            store.flush()
            step = max(1, len(ids[size]) // writes)
            targets[size] = [ids[size][(i * step) % len(ids[size])] for i in range(writes)]
            docs[size] = {id: store.get("volumes", id) for id in targets[size]}
            for id in targets[size]:    # reading them loads their trees, as a service has them
                store.get_at("volumes", id, "HEAD")
        puts = {size: [] for size in opened}
        elapsed = dict.fromkeys(opened, 0.0)
        # Each round rotates the order, so that no store always follows
        # the db plugin's fsyncs.
        order: list[int | None] = [*opened, None]
        with CommitTimer() as timer:
            for n in range(writes):
                for size in order[n % len(order):] + order[:n % len(order)]:
                    if size is None:
                        if db is not None:
                            db.write()
                        continue
                    store = opened[size]
                    id = targets[size][n]
                    doc = {**docs[size][id], "status": "in-use" if n % 2 else "available",
                           "attach": f"{mode}-{fsync}-{n}-{time.time()}"}   # never a no-op
                    started = time.perf_counter()
                    store.put("volumes", id, doc)
                    puts[size].append(time.perf_counter() - started)
                    elapsed[size] += time.perf_counter() - started
            for size, store in opened.items():
                started = time.perf_counter()
                store.flush()
                elapsed[size] += time.perf_counter() - started
        return {size: {"write": quantiles(puts[size]),
                       "commit": quantiles(timer.samples[store.root]) if mode == "sync" else None,
                       "amortized": elapsed[size] / writes * 1e3,
                       "index": time_index_update(store, ids[size][20:25])}
                for size, store in opened.items()}
    finally:
        for store in opened.values():
            store.close()


def time_index_update(store: Store, ids: list[str]) -> float:
    """Median ms of one background index update for one committed path."""
    history = store.history
    history.flush()
    samples = []
    for id in ids:
        store.put("volumes", id, {**store.get("volumes", id), "status": f"indexed {time.time()}"})
        with store.exclusive():         # what the background thread holds
            history.commit_queued()
            started = time.perf_counter()
            history.index.update()
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", action="store_true", help="also measure 100k records")
    parser.add_argument("--writes", type=int, default=150, help="writes per cell")
    parser.add_argument("--no-db", action="store_true", help="skip the cinderlib comparison")
    args = parser.parse_args()
    sizes = [1_000, 20_000] + ([100_000] if args.big else [])
    root = tempfile.mkdtemp(prefix="bench-commit-")
    git = subprocess.run(["git", "version"], capture_output=True, text=True).stdout.split()[-1]
    print(f"git {git}, {args.writes} writes per cell, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}, folder {root}", flush=True)
    db = None
    try:
        if not args.no_db:
            try:
                db = DbPlugin(1_000)
            except (RuntimeError, OSError) as exc:
                print(f"  no db plugin comparison: {exc}")
        stores, ids = {}, {}
        for size in sizes:
            stores[size] = os.path.join(root, f"store-{size}")
            ids[size] = populate(stores[size], size)
        results = {}
        for mode, fsync in MODES:
            for size, result in measure(stores, ids, args.writes, mode, fsync, db).items():
                results[size, mode, fsync] = result
            print(f"  measured {mode} fsync={fsync}", flush=True)
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(root, ignore_errors=True)

    print()
    print("ms per write, median / p90; each put changes one record")
    header = (f"{'mode':6} {'fsync':5} {'records':>8}  {'write (put+commit)':>18}  "
              f"{'commit share':>13}  {'amortized':>9}  {'index':>6}")
    print(header)
    print("-" * len(header))
    for mode, fsync in MODES:
        for size in sizes:
            r = results[size, mode, fsync]
            commit = "-" if r["commit"] is None else "%5.2f / %5.2f" % r["commit"]
            print(f"{mode:6} {str(fsync):5} {size:>8}  {'%6.2f / %6.2f' % r['write']:>18}  "
                  f"{commit:>13}  {r['amortized']:9.2f}  {r['index']:6.2f}")
    print()
    for mode, fsync in MODES:
        small = results[1_000, mode, fsync]
        for size in sizes[1:]:
            large = results[size, mode, fsync]
            line = (f"ratio {size // 1000}k/1k {mode:5} fsync={str(fsync):5}: "
                    f"write {large['write'][0] / small['write'][0]:.2f}")
            if small["commit"]:
                line += f", commit {large['commit'][0] / small['commit'][0]:.2f}"
            line += f", amortized {large['amortized'] / small['amortized']:.2f}"
            print(line)
    if db is not None:
        print("cinderlib db plugin set_volume (sqlite, 1k volumes, no history), "
              "interleaved with the writes above: %.2f / %.2f ms" % quantiles(db.samples))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--db-child"]:
        db_child(int(sys.argv[2]))
    else:
        main()
