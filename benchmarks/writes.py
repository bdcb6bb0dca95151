"""The write path's targets (issue 17), each measured against its reference
in the same run, interleaved, and printed with its ratio and MET / NOT MET:

* **durable set** <= 1.3x the floor: a plain `Store.put` (fsync on, the
  default native watcher) against the floor, a bare write + fsync + rename
  + folder fsync of the same bytes, one after the other for each record;
* **versioned set** (``git=True``, ``commit_mode="sync"``: a commit per
  write) <= 2x the durable plain set, interleaved the same way;
* **group commit**: 4 writer threads of one store commit >= 2x the rate of
  one thread (and 4 writer processes against one process, printed beside
  it);
* **batched writes** add <= 15% with git: `Store.batch` of `--batch` puts
  with git against the same batch in a plain store, and ``commit_mode=
  "async"`` puts plus `flush` against the same puts in a plain store.

    python benchmarks/writes.py [--n 300] [--batch 100] [--rounds 5] [--batch-rounds 15]
                                [--tmp DIR] [--no-processes]

The stores go in a temp folder (``--tmp``), never inside a git work tree
(a git store there would commit into it).  Ratios are medians of per-pair
ratios, so that the machine's load, which moves both sides of a pair
alike, cancels out; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gitpersist import Store  # noqa: E402
from _workload import Floor  # noqa: E402  (the floor benchmarks/run.py measures)


def document(i: int) -> dict[str, object]:
    """A record about the size of a cinderlib volume's (~900 bytes)."""
    return {"display_name": f"volume-{i}", "size": i % 100, "status": "available",
            "host": "host@backend#pool", "volume_type_id": "3f1c" * 9,
            "metadata": {f"key{k}": f"value-{k}-{i}" for k in range(12)},
            "attach_status": "detached", "notes": "n" * 400}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(n: int, first: Callable[[int], object],
           second: Callable[[int], object]) -> tuple[float, float, float]:
    """(median s of `first`, median s of `second`, median of the per-pair
    ratios first/second), the two run one after the other for each i."""
    a, b = [], []
    for i in range(n):
        a.append(timed(lambda: first(i)))
        b.append(timed(lambda: second(i)))
    return (statistics.median(a), statistics.median(b),
            statistics.median(x / y for x, y in zip(a, b)))


IDS = 200       # records rewritten round-robin (updates, like a cinderlib volume's life)


def durable_vs_floor(work: str, n: int) -> tuple[float, float, float]:
    with Store(f"{work}/plain") as store:
        floor = Floor(work)
        try:
            return paired(n, lambda i: store.put("volumes", f"v{i % IDS}", document(i)),
                          lambda i: floor.write({**document(i), "id": f"v{i % IDS}"}))
        finally:
            floor.close()


def versioned_vs_durable(work: str, n: int) -> tuple[float, float, float]:
    with Store(f"{work}/git", git=True) as git, Store(f"{work}/plain2") as plain:
        return paired(n, lambda i: git.put("volumes", f"v{i % IDS}", document(i)),
                      lambda i: plain.put("volumes", f"v{i % IDS}", document(i)))


def _thread_rate(root: str, writers: int, n: int) -> float:
    """Writes per second of `writers` threads sharing one git store, each
    writing `n` records of its own."""
    with Store(root, git=True) as store:
        def write(w: int) -> None:
            for i in range(n):
                store.put("volumes", f"t{w}-{i % IDS}", document(i))
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return writers * n / (time.perf_counter() - start)


def _process_writer(root: str, w: int, n: int, go: object) -> None:
    with Store(root, git=True, watch="off") as store:
        go.wait()       # type: ignore[attr-defined]
        for i in range(n):
            store.put("volumes", f"p{w}-{i % IDS}", document(i))


def _process_rate(root: str, writers: int, n: int) -> float:
    Store(root, git=True).close()
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    procs = [context.Process(target=_process_writer, args=(root, w, n, go))
             for w in range(writers)]
    for proc in procs:
        proc.start()
    time.sleep(1.5)         # let them all open the store (imports included)
    start = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
    return writers * n / (time.perf_counter() - start)


def group_commit(work: str, n: int, rounds: int, rate: Callable[[str, int, int], float],
                 tag: str) -> tuple[float, float, float]:
    ones, fours = [], []
    for r in range(rounds):
        ones.append(rate(f"{work}/{tag}1-{r}", 1, n))
        fours.append(rate(f"{work}/{tag}4-{r}", 4, n // 4))
    return (statistics.median(fours), statistics.median(ones),
            statistics.median(f / o for f, o in zip(fours, ones)))


def batched(work: str, size: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    with Store(f"{work}/batch-git", git=True) as git, Store(f"{work}/batch-plain") as plain, \
            Store(f"{work}/async", git=True, commit_mode="async") as lazy, \
            Store(f"{work}/async-plain") as plain2:
        def batch(store: Store, r: int) -> None:
            with store.batch(f"round {r}"):
                for i in range(size):
                    store.put("volumes", f"b{i}", document(r * size + i))

        def async_puts(store: Store, r: int) -> None:
            for i in range(size):
                store.put("volumes", f"b{i}", document(r * size + i))
            store.flush()
        return {"batch": paired(rounds, lambda r: batch(git, r), lambda r: batch(plain, r)),
                "async": paired(rounds, lambda r: async_puts(lazy, r),
                                lambda r: async_puts(plain2, r))}


def verdict(name: str, ratio: float, limit: float, *, at_least: bool = False,
            detail: str = "") -> str:
    met = ratio >= limit if at_least else ratio <= limit
    sign = ">=" if at_least else "<="
    return (f"{name:<44} {ratio:6.2f}x  (target {sign} {limit:g}x)  "
            f"{'MET' if met else 'NOT MET'}   {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="writes per paired measurement")
    parser.add_argument("--batch", type=int, default=100, help="puts per batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the rate runs")
    parser.add_argument("--batch-rounds", type=int, default=15,
                        help="batches of each kind, interleaved")
    parser.add_argument("--tmp", default=None, help="folder for the stores (not in a git tree)")
    parser.add_argument("--no-processes", action="store_true",
                        help="skip the 4-process group commit run")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gitpersist-writes-", dir=args.tmp)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  "
          f"({os.cpu_count()} cores); {args.n} writes a pair run, batches of {args.batch}")
    try:
        lines = []
        store, floor, ratio = durable_vs_floor(work, args.n)
        print(f"floor (write + fsync + rename + folder fsync): {floor * 1e3:.3f} ms median")
        lines.append(verdict("durable set / floor", ratio, 1.3,
                             detail=f"{store * 1e3:.3f} ms vs {floor * 1e3:.3f} ms"))
        git, plain, ratio = versioned_vs_durable(work, args.n)
        lines.append(verdict("versioned set (sync) / durable set", ratio, 2.0,
                             detail=f"{git * 1e3:.3f} ms vs {plain * 1e3:.3f} ms"))
        four, one, ratio = group_commit(work, args.n, args.rounds, _thread_rate, "threads")
        lines.append(verdict("4 writer threads / 1 (versioned writes/s)", ratio, 2.0,
                             at_least=True, detail=f"{four:.0f}/s vs {one:.0f}/s"))
        if not args.no_processes:
            four, one, ratio = group_commit(work, args.n, max(1, args.rounds // 2),
                                            _process_rate, "procs")
            lines.append(verdict("4 writer processes / 1 (versioned writes/s)", ratio, 2.0,
                                 at_least=True, detail=f"{four:.0f}/s vs {one:.0f}/s"))
        for name, (with_git, without, ratio) in batched(work, args.batch, args.batch_rounds).items():
            label = ("Store.batch with git / without" if name == "batch"
                     else "async puts + flush / plain puts")
            lines.append(verdict(label, ratio, 1.15,
                                 detail=f"{with_git * 1e3:.1f} ms vs {without * 1e3:.1f} ms "
                                        f"for {args.batch}"))
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
