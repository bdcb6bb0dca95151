"""The cold open of a big store: a new process's first answer, through
`Store` and through the cinderlib plugin, with and without the cache's
snapshot (gitpersist/snapshot.py).

    .venv/bin/python benchmarks/cold_open.py [--n 100000] [--repeats 3] [--store PATH]

Builds a store of `--n` volume records shaped as the plugin writes them
(untimed; kept with `--store PATH` to measure it again), opens it once
through the plugin (its first open declares the secret fields), then
times new processes, each from opening the store to its first answer
(``cinderlib.setup`` included, imports excluded): by name, by id, and
listing every volume (``get_volumes()``).  Then it changes records while
nothing runs (1% replaced, one edited in place keeping its size and mtime)
and checks that the next open answers with the changes.  Prints wall and
CPU seconds (CPU survives a loaded machine better), each target with its
ratio and MET/NOT MET, the snapshot's speed-up, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _scaling  # noqa: E402  (the records, the growing of a store)

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from helpers import edit_in_place  # noqa: E402  (the tests' in-place edit)

INDEXES = _scaling.INDEXES
TARGETS = {"plugin, by name": 2.0, "plugin, by id": 2.0, "plugin, list all": 5.0}
SNAPSHOT_DIR = os.path.join(".gitpersist", "snapshot")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the child: one cold open --------------------------------------------------

def child(how: str, folder: str, value: str) -> None:
    if how.startswith("plugin"):
        import cinderlib
        from cinder.common import config  # noqa: F401
        from oslo_config import cfg
        state = tempfile.mkdtemp()
        cfg.CONF.set_override("state_path", state)
    else:
        from gitpersist import Store
    wall, cpu = time.perf_counter(), time.process_time()
    if how.startswith("plugin"):
        cinderlib.setup(persistence_config={"storage": "file", "path": folder},
                        file_locks_path=state, fail_on_missing_backend=False)
        persistence = cinderlib.Backend.persistence
        found: list[Any] = (persistence.get_volumes(volume_name=value) if how == "plugin-name"
                            else persistence.get_volumes(volume_id=value) if how == "plugin-id"
                            else persistence.get_volumes())
        answer = [volume.name for volume in found] if how != "plugin-all" else [len(found)]
        store = persistence.store
    else:
        store = Store(folder, indexes=INDEXES)
        docs = (store.find("volumes", display_name=value) if how == "store-name"
                else [store.get("volumes", value)])
        answer = [doc["display_name"] if doc else None for doc in docs]
    out = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
           "answer": answer}
    print(json.dumps(out), flush=True)
    store.close()       # saves the snapshot if the open read many files


def cold(how: str, folder: str, value: str, repeats: int, fresh: bool = False
         ) -> dict[str, Any]:
    """Median wall and CPU seconds of `repeats` new processes (`fresh`:
    each without a snapshot)."""
    runs = []
    for _ in range(repeats):
        if fresh:
            shutil.rmtree(os.path.join(folder, SNAPSHOT_DIR), ignore_errors=True)
        run = subprocess.run([sys.executable, __file__, "--child", how, folder, value],
                             capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"cold open {how} failed:\n{run.stderr}")
        runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return {"wall": statistics.median(r["wall"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs),
            "answer": runs[-1]["answer"]}


# -- changes made while nothing ran -------------------------------------------

def change_offline(folder: str, n: int, share: float) -> tuple[str, str]:
    """Replace a `share` of the records (renamed over, as any writer does)
    and edit one in place keeping its size and mtime; the new name of that
    one, and of a replaced one."""
    from gitpersist import paths
    step = max(1, int(1 / share))
    replaced = ""
    for i in range(1, n, step):
        id, doc = _scaling.record(i)
        path = os.path.join(folder, *paths.record_path("volumes", id).split("/"))
        with open(path, "rb") as file:
            data = file.read()
        replaced = f"vol-{i:06d}".replace("vol-", "new-")
        temp = path + ".tmp-bench"
        with open(temp, "wb") as file:
            file.write(data.replace(f"vol-{i:06d}".encode(), replaced.encode()))
        os.replace(temp, path)
    id, doc = _scaling.record(0)
    edit_in_place(os.path.join(folder, *paths.record_path("volumes", id).split("/")),
                  b"vol-000000", b"edt-000000")
    return "edt-000000", replaced


# -- the report ----------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="volumes (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="processes per measure")
    parser.add_argument("--store", help="build the store here and keep it (reused if there)")
    parser.add_argument("--tmp", default=None, help="where the temporary store goes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    folder = args.store or os.path.join(tempfile.mkdtemp(prefix="gitpersist-cold-",
                                                         dir=args.tmp), "store")
    print(f"cold open of {args.n:,} volumes in {folder}; load average {load()}", flush=True)
    try:
        if not os.path.isdir(os.path.join(folder, "volumes")):
            print(f"  building the store: {_scaling.grow(folder, 0, args.n):.1f} s", flush=True)
        cold("plugin-name", folder, "vol-000001", 1)      # declares secrets, saves a snapshot
        name, id = _scaling.record(args.n // 2)[1]["display_name"], _scaling.record(args.n // 2)[0]
        rows: dict[str, dict[str, Any]] = {}
        rows["Store, by name, no snapshot"] = cold("store-name", folder, name, args.repeats,
                                                   fresh=True)
        rows["plugin, by name, no snapshot"] = cold("plugin-name", folder, name, args.repeats,
                                                    fresh=True)
        rows["Store, by name"] = cold("store-name", folder, name, args.repeats)
        rows["Store, by id"] = cold("store-id", folder, id, args.repeats)
        rows["plugin, by name"] = cold("plugin-name", folder, name, args.repeats)
        rows["plugin, by id"] = cold("plugin-id", folder, id, args.repeats)
        rows["plugin, list all"] = cold("plugin-all", folder, "", args.repeats)
        edited, replaced = change_offline(folder, args.n, 0.01)
        after = rows["plugin, by name, after 1% changed offline"] = cold(
            "plugin-name", folder, replaced, 1)
        in_place = cold("plugin-name", folder, edited, 1)
        correct = after["answer"] == [replaced] and in_place["answer"] == [edited]
    finally:
        if not args.store:
            shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
    print(f"\n{'measure':45} {'wall s':>8} {'cpu s':>8}   target")
    for key, row in rows.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else (
            f"<= {target:.0f} s: wall {row['wall'] / target:.2f}x, cpu {row['cpu'] / target:.2f}x"
            f" {'MET' if row['wall'] <= target else 'NOT MET'}"
            f"{'' if row['wall'] <= target else (' (MET in CPU)' if row['cpu'] <= target else '')}")
        print(f"{key:45} {row['wall']:8.3f} {row['cpu']:8.3f}   {verdict}")
    for what in ("Store", "plugin"):
        cold_, warm = rows[f"{what}, by name, no snapshot"], rows[f"{what}, by name"]
        print(f"snapshot speed-up, {what} by name: wall {cold_['wall'] / warm['wall']:.2f}x, "
              f"cpu {cold_['cpu'] / warm['cpu']:.2f}x")
    print(f"after changes made while nothing ran (1% replaced, one edited in place, same "
          f"size and mtime): {'CORRECT' if correct else 'WRONG'} answers")
    print(f"load average at the end {load()}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
