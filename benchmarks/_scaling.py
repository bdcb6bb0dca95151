"""The scaling curve of benchmarks/run.py --scaling: gitpersist's costs
against the number of stored records.

One store grows through the sizes given (default 1k ... 100k volume
records, shaped as the cinderlib plugin writes them).  At each size:

* set: ``Store.put`` of an existing record, plain, fsync (the durable set);
* set, git: the same with ``git=True`` and a commit per write, and the
  commit's share of it (the time inside the history's ``record``);
* get: ``Store.get`` by id of a cached record, and ``find`` by an indexed
  name;
* cold open: a new process opening the store and answering its first
  filtered query (by name), through ``Store`` and through the cinderlib
  plugin (``cinderlib.setup`` + ``get_volumes(volume_name=...)``, cinderlib
  already imported: its import is the same for every plugin).

Records are written untimed with fsync off; turning git on the first time
commits them all (the time is shown).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

AUTHOR = "bench <bench@example.com>"
INDEXES = {"volumes": {"display_name": None}}


def record(i: int) -> tuple[str, dict[str, Any]]:
    """Volume `i`: the fields cinderlib's file plugin writes for a new volume."""
    return str(uuid.UUID(int=i + 1)), {
        "admin_metadata": {}, "attach_status": "detached", "bootable": False,
        "created_at": "2026-01-01T00:00:00.000000Z", "deleted": False,
        "display_name": f"vol-{i:06d}", "glance_metadata": {},
        "host": f"node@backend-{i % 100:03d}#pool", "metadata": {},
        "multiattach": False, "project_id": "cinderlib", "shared_targets": True,
        "size": 1 + i % 10, "status": "available", "use_quota": True,
        "user_id": "cinderlib"}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def p90_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[int(round(0.9 * (len(ordered) - 1)))] * 1e3


def grow(folder: str, start: int, stop: int) -> float:
    """Add records start..stop-1 (no fsync, no git); return seconds taken."""
    from gitpersist import Store
    t0 = time.perf_counter()
    with Store(folder, watch="off", fsync=False) as store:
        for i in range(start, stop):
            store.put("volumes", *record(i))
    return time.perf_counter() - t0


def measure(folder: str, n: int, writes: int, seed: int) -> dict[str, Any]:
    from gitpersist import Store
    rng = random.Random(seed)
    out: dict[str, Any] = {}

    t0 = time.perf_counter()
    Store(folder, git=True, watch="off", fsync=False, author=AUTHOR).close()
    out["git catch-up commit of new records (s)"] = time.perf_counter() - t0

    with Store(folder, indexes=INDEXES) as store:       # plain, fsync, native watch
        picked = [rng.randrange(n) for _ in range(writes)]
        store.find("volumes", display_name="vol-000000")  # load the type once
        gets, finds, sets = [], [], []
        for i in picked:
            id, doc = record(i)
            t = time.perf_counter()
            store.get("volumes", id)
            gets.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.find("volumes", display_name=doc["display_name"])
            finds.append(time.perf_counter() - t)
        for k, i in enumerate(picked):
            id, doc = record(i)
            t = time.perf_counter()
            store.put("volumes", id, {**doc, "status": f"plain {k}"})
            sets.append(time.perf_counter() - t)
    out["get by id, warm"] = gets
    out["find by name, warm"] = finds
    out["set (plain, fsync)"] = sets

    with Store(folder, git=True, indexes=INDEXES, author=AUTHOR) as store:
        history = store.history
        commits: list[float] = []
        record_commit = history.record

        def timed(changes: Any, message: str) -> None:
            t = time.perf_counter()
            record_commit(changes, message)
            commits.append(time.perf_counter() - t)

        history.record = timed          # this instance only
        for k, i in enumerate(picked[:20]):     # warm the tree cache, as a running service
            id, doc = record(i)
            store.put("volumes", id, {**doc, "status": f"warm {k}"})
        del commits[:]
        sets = []
        for k, i in enumerate(picked):
            id, doc = record(i)
            t = time.perf_counter()
            store.put("volumes", id, {**doc, "status": f"git {k}"})
            sets.append(time.perf_counter() - t)
        out["set (git, commit per write)"] = sets
        out["commit share of a git set"] = commits
    return out


def cold(folder: str, how: str, name: str, repeats: int) -> list[float]:
    """New processes, each timed from opening the store to its first answer."""
    times = []
    for _ in range(repeats):
        run = subprocess.run([sys.executable, __file__, how, folder, name],
                             capture_output=True, text=True, check=True)
        times.append(json.loads(run.stdout.strip().splitlines()[-1])["open to answer"])
    return times


def cold_child(how: str, folder: str, name: str) -> None:
    if how == "--cold-store":
        from gitpersist import Store
        t0 = time.perf_counter()
        store = Store(folder, indexes=INDEXES)
        found = store.find("volumes", display_name=name)
    else:
        import cinderlib
        from cinder.common import config  # noqa: F401
        from oslo_config import cfg
        state = tempfile.mkdtemp()
        cfg.CONF.set_override("state_path", state)
        t0 = time.perf_counter()
        cinderlib.setup(persistence_config={"storage": "file", "path": folder},
                        file_locks_path=state, fail_on_missing_backend=False)
        found = cinderlib.Backend.persistence.get_volumes(volume_name=name)
        store = cinderlib.Backend.persistence.store
    answered = time.perf_counter() - t0
    assert len(found) == 1, found
    print(json.dumps({"open to answer": answered}), flush=True)
    store.close()


def main(args: Any) -> int:
    import _report  # noqa: F401  (matplotlib loads in plot only)
    from run import check_outside_git, load
    sizes = sorted(int(s) for s in args.sizes.split(","))
    writes = min(args.sample, 200)
    repeats = args.cold_repeats
    root = tempfile.mkdtemp(prefix="gitpersist-scaling-", dir=args.tmp)
    check_outside_git(root)
    folder = os.path.join(root, "store")
    subprocess.run(["git", "init", "-q", folder], check=True)
    print(f"scaling, sizes {sizes}; load average {load()}", flush=True)
    rows: list[dict[str, Any]] = []
    try:
        have = 0
        for n in sizes:
            grown = grow(folder, have, n)
            have = n
            samples = measure(folder, n, writes, seed=n)
            name = record(n // 2)[1]["display_name"]
            samples["cold open, Store"] = cold(folder, "--cold-store", name, repeats)
            samples["cold open, cinderlib plugin"] = cold(folder, "--cold-plugin", name,
                                                              repeats)
            row = {"n": n, "grow (s)": grown,
                   "git catch-up commit of new records (s)":
                       samples.pop("git catch-up commit of new records (s)")}
            for key, values in samples.items():
                row[key] = {"median ms": median_ms(values), "p90 ms": p90_ms(values),
                            "count": len(values)}
            rows.append(row)
            print(f"  N={n}: " + "; ".join(
                f"{key} {row[key]['median ms']:.3g} ms" for key in samples), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report = {"meta": {"command": " ".join(["benchmarks/run.py", *sys.argv[1:]]),
                       "sizes": sizes, "writes per size": writes, "cold repeats": repeats,
                       "load at end": load(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")},
              "rows": rows}
    print()
    print(table(rows))
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"scaling-{sizes[-1]}")
    with open(stem + ".json", "w") as file:
        json.dump(report, file, indent=1)
    plot(rows, stem + ".png")
    print(f"\nwrote {stem}.json and {stem}.png")
    return 0


MEASURES = ["set (plain, fsync)", "set (git, commit per write)", "commit share of a git set",
            "get by id, warm", "find by name, warm", "cold open, Store",
            "cold open, cinderlib plugin"]


def table(rows: list[dict[str, Any]]) -> str:
    header = ["N", *MEASURES]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        lines.append(" | ".join([f"{row['n']:,}", *(
            f"{row[m]['median ms']:.3g}" for m in MEASURES)]))
    return "median milliseconds (cold opens too)\n" + "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ns = [row["n"] for row in rows]
    for measure in MEASURES:
        ax.plot(ns, [row[measure]["median ms"] for row in rows], marker="o", label=measure)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records in the store")
    ax.set_ylabel("median milliseconds")
    ax.set_title("gitpersist cost against store size")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    cold_child(*sys.argv[1:4])
