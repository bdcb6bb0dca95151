"""What keeping reads right without the watcher costs a read.

    .venv/bin/python benchmarks/coherence.py [--records 2000] [--repeat 7]

Opens one store of `--records` records per mode and times, best of
`--repeat` rounds, a warm ``get`` by id (the record cached) and a listing
(``all``) of the type:

* ``native``: the watcher healthy; a read checks the change log (one
  ``stat``) and applies what it lists;
* ``off``: no watcher; the same;
* ``checking``: a watcher that cannot do its job (its thread stopped); reads
  check their files too (one ``lstat`` per get, one per file per listing);
* ``floor``: what the reads cost without the change log's ``stat`` (the
  cache's lookup and the JSON copy alone), measured by disabling the log's
  check in this process only.

Prints microseconds per operation and each mode's ratio to the floor.
Plain `Store` (no cinderlib): the costs of building cinderlib objects are
`run.py`'s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from gitpersist import Store
from gitpersist.changelog import ChangeLog


def best(fn, count: int, repeat: int) -> float:
    """Best microseconds per call of `fn` over `repeat` rounds of `count`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        times.append((time.perf_counter() - start) / count * 1e6)
    return min(times)


def measure(root: str, watch: str, records: int, repeat: int) -> tuple[float, float]:
    with Store(root, watch="native" if watch == "checking" else
               ("off" if watch == "floor" else watch), fsync=False) as store:
        if watch == "checking":
            store._watcher.health.fail("the benchmark: reads check their files")  # noqa: SLF001
        store.all("volumes")
        ids = [f"v{n}" for n in range(0, records, max(1, records // 100))]
        get = best(lambda: [store.get("volumes", id) for id in ids], 20, repeat) / len(ids)
        listing = best(lambda: store.all("volumes"), 3, repeat)
    return get, listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "store")
        with Store(root, watch="off", fsync=False) as store, store.batch("fill"):
            for n in range(args.records):
                store.put("volumes", f"v{n}", {"n": n, "display_name": f"volume {n}",
                                               "size": 1, "status": "available"})
        results: dict[str, tuple[float, float]] = {}
        real_news = ChangeLog.news
        for mode in ("floor", "native", "off", "checking", "floor"):      # floor twice: warm-up
            if mode == "floor":
                ChangeLog.news = lambda self: []      # type: ignore[method-assign]
            try:
                got = measure(root, mode, args.records, args.repeat)
            finally:
                ChangeLog.news = real_news            # type: ignore[method-assign]
            old = results.get(mode, got)
            results[mode] = (min(old[0], got[0]), min(old[1], got[1]))
    floor_get, floor_list = results["floor"]
    print(f"{args.records} records; best of {args.repeat}; load {os.getloadavg()[0]:.2f}")
    print(f"{'mode':10} {'get us':>9} {'x floor':>8} {'list ms':>9} {'x floor':>8}")
    for mode, (get, listing) in results.items():
        print(f"{mode:10} {get:9.2f} {get / floor_get:8.2f} {listing / 1000:9.2f} "
              f"{listing / floor_list:8.2f}")


if __name__ == "__main__":
    main()
