"""How soon a write in one process is seen by reads in the others.

    .venv/bin/python benchmarks/visibility.py [--readers 3] [--writes 200]
        [--interval 0.02] [--watch native,polling] [--poll-interval 0.1] [--git]

One writer process and `--readers` reader processes open the same store.
Each reader first reads the probe record (so it is in its cache, where
only the watcher can refresh it), then reads it in a loop (a 1 ms sleep
between reads).  The writer puts ``{"seq": k, "t": <CLOCK_MONOTONIC>}``
every `--interval` seconds; a reader that sees a new ``seq`` records
``now - t`` (CLOCK_MONOTONIC is one clock for every process of the host).
Prints the distribution of those latencies per watch mode: what a reader
in another process can miss, from the writer's ``put`` returning to the
reader's ``get`` returning the new record.  A reader may skip a sequence
number (the next write came first); those count as missed, not as samples.

The figures include the readers' 1 ms polling and the scheduling of
readers + 1 processes on this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

READER = """
import json, sys, time
from gitpersist import Store
root, watch, poll, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
latencies, last = [], -1
with Store(root, watch=watch, poll_interval=poll, fsync=False) as store:
    store.get("probe", "p")
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    while last < count - 1 and time.monotonic() < deadline:
        doc = store.get("probe", "p")
        if doc["seq"] != last:
            now = time.monotonic()
            if doc["seq"] >= 0:
                latencies.append(now - doc["t"])
            last = doc["seq"]
        time.sleep(0.001)
print(json.dumps(latencies), flush=True)
"""

WRITER = """
import sys, time
from gitpersist import Store
root, count, interval, git = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
with Store(root, watch="off", fsync=False, git=git) as store:
    for seq in range(count):
        time.sleep(interval)
        store.put("probe", "p", {"seq": seq, "t": time.monotonic()})
"""


def run(watch: str, args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="gitpersist-visibility-") as root:
        from gitpersist import Store
        with Store(root, watch="off", fsync=False, git=args.git) as store:
            store.put("probe", "p", {"seq": -1, "t": time.monotonic()})
        readers = [subprocess.Popen(
            [sys.executable, "-c", READER, root, watch, str(args.poll_interval),
             str(args.writes)], stdout=subprocess.PIPE, text=True)
            for _ in range(args.readers)]
        for reader in readers:
            assert reader.stdout.readline().strip() == "ready"
        subprocess.run([sys.executable, "-c", WRITER, root, str(args.writes),
                        str(args.interval), "1" if args.git else "0"], check=True)
        latencies = []
        for reader in readers:
            out, _ = reader.communicate(timeout=300)
            latencies.extend(json.loads(out.strip().splitlines()[-1]))
        return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02,
                        help="seconds between two writes (default 0.02)")
    parser.add_argument("--watch", default="native,polling")
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--git", action="store_true", help="the writer commits every put")
    args = parser.parse_args()
    print(f"{args.readers} reader processes, 1 writer, {args.writes} writes every "
          f"{args.interval * 1000:g} ms{', git' if args.git else ''}; {os.cpu_count()} cores")
    print(f"{'watch':<22} {'samples':>7} {'missed':>6} {'p50 ms':>7} {'p90 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7}")
    for watch in args.watch.split(","):
        latencies = sorted(run(watch, args))
        label = watch + (f" ({args.poll_interval:g} s)" if watch == "polling" else "")
        if not latencies:
            print(f"{label:<22} no samples")
            continue
        q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 \
            else [latencies[0]] * 99
        print(f"{label:<22} {len(latencies):>7} {args.readers * args.writes - len(latencies):>6} "
              f"{q[49] * 1000:>7.1f} {q[89] * 1000:>7.1f} {q[98] * 1000:>7.1f} "
              f"{latencies[-1] * 1000:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
