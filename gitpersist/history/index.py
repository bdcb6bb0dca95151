"""git's index, set to what we committed.

Guarantees:

* **The index follows.**  Within `index_delay` seconds of a commit (and
  always before `flush` and `close` return) one ``git update-index
  --index-info`` run sets the index entries of the paths we committed to
  their HEAD version, so ``git status`` shows nothing of ours; no other
  index entry is touched.  The run holds no store lock (writers go on);
  paths whose HEAD version moved meanwhile are updated again.  Rewriting
  a big index is O(N) (100k entries: 50-200 ms), so runs are spaced by at
  least 4x the last run's duration.  Window: for up to that delay the index
  holds the previous version of the records just committed, so a plain
  ``git commit`` run by hand in that window would record those previous
  versions; the store's next open sees that the files differ from HEAD and
  commits them again (recovery), so nothing is lost.  The update holds
  git's ``index.lock`` for a few ms; a git command that needs it at that
  moment fails as it would next to any other git process (we retry ours).

Cost that decided the design: ``git update-index`` per commit costs a
process start plus rewriting the whole index (5 ms at 1k records, 20 ms at
20k, 85 ms at 100k): so it runs in the background, once for every path
committed meanwhile.

`index_info` is the one builder of ``--index-info`` lines (the history's
updates, the sync's index and its scratch indexes); `update_index` runs
them with the ``index.lock`` retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from ..errors import HistoryError
from .objects import NULL_ID, Entry
from .runner import GitRunner, Run

IndexEntry = tuple[int, str]        # (mode, hex object id)


def index_info(entries: Mapping[str, IndexEntry | None]) -> bytes:
    """``git update-index -z --index-info`` input setting each path (from
    the work tree's top) to its (mode, hex id), in path order; None removes
    the path's entry (mode 0)."""
    return b"".join(b"%o %s\t%s\0" % (entry[0] if entry else 0,
                                       (entry[1] if entry else NULL_ID).encode(),
                                       path.encode("utf-8", "surrogateescape"))
                    for path, entry in sorted(entries.items()))


def update_index(runner: GitRunner, entries: Mapping[str, IndexEntry | None], *,
                 env: Mapping[str, str] | None = None, lock_timeout: float = 10.0) -> Run:
    """One ``git update-index`` run setting `entries` (see `index_info`),
    retried while another git process holds ``index.lock``.  `env` may name
    another index (GIT_INDEX_FILE).  Its exit status is the caller's to
    judge."""
    return runner.run_retrying_index(["update-index", "-z", "--index-info"],
                                     input=index_info(entries), env=env,
                                     lock_timeout=lock_timeout)


class IndexTunables(Protocol):
    """What an `IndexFollower` reads, live, of its owner (a History)."""
    index_delay: float          # seconds between a commit and its index update
    git_lock_timeout: float     # seconds to retry while git holds index.lock


class IndexFollower:
    """The index updates of one history (see the module docstring): the
    paths committed and not indexed yet, when the next update is due, and
    the gap that keeps index work under a fifth of the time.

    `head_entries(relpaths)` gives each store path's (mode, id) in HEAD
    (None: absent); `closed()` tells that the history is closed; both are
    called with `git_lock` held.  Paths are store relpaths; `prefix` makes
    them work-tree paths.

    Lock rules: `pending`, `due` and `gap` are guarded by `cond` (the
    history's condition: the worker thread waits on it for `due`).
    `update` runs one at a time in the process (its own turn lock, taken
    before `git_lock` and `cond`, never while holding them): an update
    computed before a newer commit, if it landed after that commit's own
    update, would put the older version back.  git runs holding neither
    `git_lock` nor `cond`."""

    def __init__(self, runner: GitRunner, prefix: str, *, cond: threading.Condition,
                 git_lock: threading.RLock,
                 head_entries: Callable[[list[str]], dict[str, Entry | None]],
                 closed: Callable[[], bool], tunables: IndexTunables) -> None:
        self.runner = runner
        self.prefix = prefix
        self.tunables = tunables
        self._cond = cond
        self._git_lock = git_lock
        self._head_entries = head_entries
        self._closed = closed
        self._turn = threading.Lock()
        self.pending: set[str] = set()
        self.due: float | None = None
        self.gap = 0.0              # 4x the last update's duration

    def committed(self, relpaths: Iterable[str]) -> None:
        """`relpaths` were committed: schedule their update.  (Takes `cond`,
        which is re-entrant: the history calls it holding it.)"""
        with self._cond:
            self.pending.update(relpaths)
            if self.due is None:
                self.due = time.monotonic() + max(self.tunables.index_delay, self.gap)

    def want(self, relpaths: Iterable[str]) -> None:
        """Update `relpaths` at the next `update`, due now."""
        with self._cond:
            self.pending.update(relpaths)
            self.due = time.monotonic()

    def update(self, *, only_if_due: bool = False) -> None:
        """Set the index entries of the pending paths to their HEAD version,
        in one ``git update-index`` run.  `only_if_due` (the worker thread):
        skip it if, while this thread waited for its turn, another update
        did the work and rescheduled."""
        with self._turn:
            if only_if_due:
                with self._cond:
                    if self.due is None or self.due > time.monotonic():
                        return
            self._update()

    def _update(self) -> None:
        # Needs neither the store lock nor the repo lock while git runs (a
        # 100k-entry index takes 50-150 ms to rewrite): afterwards, the paths
        # whose HEAD version changed meanwhile (a commit of ours or of
        # another process, whose own update may have come first) stay pending.
        with self._cond:
            pending = sorted(self.pending)
        if not pending:
            return
        with self._git_lock:
            if self._closed():
                return
            wanted = self._head_entries(pending)
        started = time.monotonic()
        run = update_index(self.runner, {
            self.prefix + relpath: None if wanted[relpath] is None
            else (wanted[relpath][0], wanted[relpath][1].hex())      # type: ignore[index]
            for relpath in pending}, lock_timeout=self.tunables.git_lock_timeout)
        if run.returncode != 0:
            raise HistoryError(f"git update-index in {self.runner.worktree} failed: "
                               f"{run.stderr.decode(errors='replace').strip()}")
        finished = time.monotonic()
        with self._git_lock:        # no commit of ours in between
            if self._closed():
                return
            now = self._head_entries(pending)
            with self._cond:
                self.pending.difference_update(
                    relpath for relpath in pending if now[relpath] == wanted[relpath])
                # Keeps index work under a fifth of the time on big indexes.
                self.gap = 4 * (finished - started)
                self.due = (finished + max(self.tunables.index_delay, self.gap)
                            if self.pending else None)
