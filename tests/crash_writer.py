"""The writer process of the crash tests (tests/test_crash.py).

    python crash_writer.py ROOT MODE SEED FSYNC

MODE is ``plain``, ``git``, ``batch`` (git, writes grouped in batches),
``async`` (git, ``commit_mode="async"``), ``secrets`` (git, with a secret
field, see `SECRET_FIELDS`) or ``sync`` (git, ROOT is a clone
whose ``origin`` other hosts push to: a sync after every few writes).  The writer runs the operations
`operations(SEED)` lists, in order, and prints a line to stdout (flushed)
once each has returned: ``ack N`` after operation N (0-based), ``batch N``
after a batch whose last operation is N has been committed.  It prints
``ready`` once the store is open.  The test kills it with SIGKILL at a
random moment and checks the store against those lines.
"""

from __future__ import annotations

import random
import sys

SECRET_FIELDS = {"nested"}          # secrets mode: a secret field of every put
IDS = [f"vol-{n}" for n in range(12)] + ["Vol-0", "ü/..\\x", "a" * 300, ".git"]

# An operation: ("put", id, document), ("delete", id, None), or
# ("batch", end, None) marking that operations up to `end` form one batch.
Operation = tuple[str, str, dict | None]


def operations(seed: int, count: int = 4000) -> list[Operation]:
    """The writer's operations for `seed`: puts of documents of very
    different sizes (a few bytes to 64 KiB, so that a kill can land in the
    middle of a write) and deletes, on a small set of ids."""
    rng = random.Random(seed)
    ops: list[Operation] = []
    for n in range(count):
        id = rng.choice(IDS)
        if rng.random() < 0.2:
            ops.append(("delete", id, None))
        else:
            size = rng.choice([0, 10, 1000, 20_000, 65_536])
            ops.append(("put", id, {"n": n, "seed": seed, "pad": "x" * size,
                                    "nested": {"k": [n, str(n)]}}))
    return ops


def batch_ends(seed: int, count: int) -> list[int]:
    """Index of the last operation of each batch (batch mode)."""
    rng = random.Random(seed + 1)
    ends, n = [], -1
    while n < count - 1:
        n = min(count - 1, n + rng.randint(1, 8))
        ends.append(n)
    return ends


def state_after(start: dict[str, dict], ops: list[Operation], k: int) -> dict[str, dict]:
    """The records (id -> document with "id") after the first `k` operations."""
    state = dict(start)
    for kind, id, document in ops[:k]:
        if kind == "put":
            state[id] = {**document, "id": id}
        else:
            state.pop(id, None)
    return state


def short_git_lock_waits() -> None:
    """A branch lock left by a killed writer is judged stale after 10 s by
    default; the crash tests shorten that (and the wait) to keep rounds fast."""
    from gitpersist.history import History
    History.git_lock_timeout = 0.5
    History.stale_lock_age = 0.3


def main(root: str, mode: str, seed: int, fsync: bool) -> None:
    from gitpersist import Store
    short_git_lock_waits()
    options = {"git": mode != "plain", "fsync": fsync, "watch": "off"}
    if mode == "async":
        options.update(commit_mode="async", commit_delay=0.02)
    if mode == "sync":
        options.update(remote="origin")
    if mode == "secrets":
        options.update(secret_fields={"volumes": SECRET_FIELDS})
    ops = operations(seed)
    with Store(root, **options) as store:
        print("ready", flush=True)

        def run(n: int) -> None:
            kind, id, document = ops[n]
            if kind == "put":
                store.put("volumes", id, document)
            else:
                store.delete("volumes", id)
            print(f"ack {n}", flush=True)
            if mode == "sync" and n % 4 == 3:
                store.sync()
                print(f"synced {n}", flush=True)

        if mode != "batch":
            for n in range(len(ops)):
                run(n)
            return
        start = 0
        for end in batch_ends(seed, len(ops)):
            with store.batch(f"batch up to {end}"):
                for n in range(start, end + 1):
                    run(n)
            print(f"batch {end}", flush=True)
            start = end + 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
