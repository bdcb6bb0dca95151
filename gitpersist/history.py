"""Git history of a store: every change a commit, at a cost that does not
grow with the store.

Guarantees:

* **One change, one commit.**  `History.record` turns the changed record
  files into one commit whose message says what changed; a batch is one
  commit.  A change that leaves the tree as it was (a record rewritten
  unchanged) makes no commit.  Commits hold the store's paths only: the
  rest of the tree comes unchanged from HEAD, so the user's own staged,
  unstaged and untracked work in the repository is never committed.
  Author: the `author` option, else the repository's user.name/user.email,
  else `DEFAULT_AUTHOR` (no identity needed).
* **Cost independent of the store's size.**  A commit is built from the
  changed paths alone: the blob, the trees on its path (root -> [folders
  down to the store] -> type -> shard; the 256 shards keep each tree at
  about N/256 entries) and the commit object go into one small pack, then
  the branch ref moves.  No index is read, no git process is started.
  Parsed trees are cached by id, with their entries serialised in git's
  order, so changing one entry is a bisect and a join.
* **Safe next to other git users.**  The branch moves by compare-and-swap
  under git's own ``<ref>.lock`` protocol, so a ``git commit`` run by hand
  in between is kept (ours is rebuilt on top of it).  Loose refs, packed
  refs, a detached HEAD, linked worktrees and an unborn branch (fresh
  repository) are handled; each move appends a reflog entry like git's.
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
* **Crashes lose nothing.**  Record files are durable before `record` is
  called.  A process that dies before its commit leaves files that differ
  from HEAD; `recover` (run at every open) commits them in one commit.
  A pack and its index are written to temp files (fsynced), renamed into
  place, their folder fsynced, and only then does the ref move (its lock
  file fsynced, renamed, its folder fsynced): the ref never reaches an
  object that is not on disk, and ``git fsck`` stays clean.  Temp files of
  a dead writer are removed at open.  With ``fsync=False`` all this holds
  for process crashes, not for power loss.
  A branch lock (``<ref>.lock``) left by a process killed while moving the
  branch is removed once it is `stale_lock_age` seconds old (git holds one
  for milliseconds), so the next open waits that long, then commits.
* **Asynchronous mode.**  With ``commit_mode="async"`` `record` only queues;
  a background thread commits within `commit_delay` seconds, one commit for
  everything queued (first line "N changes", the body lists each message).
  It commits the files as they are on disk at that moment, under the store
  lock, so a later write by another process is never overwritten in
  history by an older queued one.  Bound: a crash drops at most the last
  `commit_delay` seconds of *commits*, never a change: the files are on
  disk and the next open's recovery commits them in one commit.  The same
  folding happens without a crash when another process writes a record
  whose async change is still queued here: its commit then holds both
  changes (the queued version is not in history of its own, and the other
  commit's message describes only its own change).  Where several
  processes write the same records and every version must be in history,
  use sync mode: a sync-mode write first commits a record it finds changed
  and not committed (`commit_pending`), so the other process's version
  keeps a commit of its own (with a generic message).
* **Housekeeping.**  Every `repack_every` commits ``git repack -d -l
  --geometric=2`` rolls our small packs up (its cost follows the small
  packs, not the repository); every `gc_every` commits ``git gc --auto``
  does what git finds due.  One child at a time, reaped by the background
  thread; `close` lets it finish for `child_wait` seconds, then stops it
  (both commands are safe to interrupt).
* **No leaks.**  One `git.Repo` per history (its ``git cat-file`` processes
  end in `close`), one background thread, at most one git child.
  GitPython is not thread-safe: every use of the repo is serialised by one
  lock.

Costs that decided the design (2 cores, ext4, git 2.39, a shared and busy
machine; ``benchmarks/commit_scaling.py`` prints the figures of a run,
which it measures interleaved with cinderlib's db plugin):

* GitPython's ``repo.index.add`` + ``index.commit`` re-reads the index
  (36 ms at 1k records, 256 ms at 10k); ``repo.odb.store`` runs one ``git
  hash-object`` per object (2.6 ms each).
* Loose objects cost a file creation each (0.16-0.2 ms on this file system)
  and, with fsync, a file and a folder fsync each: 5.5 ms for a commit's 5
  objects, against 1.5 ms for one pack and its index.
* ``git update-index`` per commit costs a process start plus rewriting the
  whole index (5 ms at 1k records, 20 ms at 20k, 85 ms at 100k): so it runs
  in the background, once for every path committed meanwhile.
* GitPython's tree helpers (``tree_to_stream``, ``tree_entries_from_data``)
  validate every entry name: 6.4 ms for a 400-entry shard tree (100k
  records), more than the whole commit.
* gitdb's ``PackEntity.write_pack`` takes 0.57 ms for a commit's five small
  objects, `packfile.build` 0.09 ms.

A run of the benchmark (median ms per put, 1k / 20k records): sync 2.7 /
2.7 without fsync, 5.0 / 5.1 with; async (what the writer waits for) 1.2 /
1.1 and 1.8 / 1.7; cinderlib's db plugin set_volume, interleaved: 5.5.
With fsync a versioned write costs 7 fsyncs (record file and folder, pack,
index, pack folder, ref, ref folder) against sqlite's ~3, so on a machine
whose disk is busy it can cost more than the db plugin; async mode shares
one commit's fsyncs among every write of `commit_delay`.
"""

from __future__ import annotations

import atexit
import bisect
import datetime
import difflib
import functools
import hashlib
import io
import logging
import os
import re
import secrets
import subprocess
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import git
import gitdb.exc

from . import files, options, packfile
from .errors import ConfigError, GitpersistError, HistoryError, StoreError
from .messages import clean_message
from .layout import META_FILES, Change, is_store_file

LOG = logging.getLogger(__name__)

DEFAULT_AUTHOR = "gitpersist <gitpersist@localhost>"
"""Author of the commits when none is given and git has no user.name/email."""

_TREE, _FILE = 0o40000, 0o100644
_NULL = "0" * 40
_HEX40 = re.compile(rb"[0-9a-f]{40}")
_LOCK_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
# Housekeeping: roll the small packs up into packs of geometrically growing
# sizes (git >= 2.32; cost ~ the small packs, not the repository), and let
# git decide about the rest.  gc.autoDetach=false: a detached gc would
# outlive us, unreaped.
_REPACK = ["repack", "-d", "-l", "-q", "--geometric=2"]
_GC = ["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"]
Entry = tuple[int, bytes]                       # (mode, binary object id)


class _Tree:
    """A parsed git tree, kept with its serialised entries in git's order
    so that changing a few names costs a few list operations and one join.

    Written by hand: GitPython's tree_to_stream and tree_entries_from_data
    validate every name on each call, 6.4 ms for a 400-entry shard tree
    (100k records), far more than the whole commit."""

    __slots__ = ("entries", "keys", "chunks")

    def __init__(self, entries: dict[str, Entry], keys: list[bytes],
                 chunks: list[bytes]) -> None:
        self.entries = entries      # name -> (mode, id)
        self.keys = keys            # git's sort keys: the name, plus "/" for a folder
        self.chunks = chunks        # serialised entries, same order as keys

    @classmethod
    def parse(cls, data: bytes) -> _Tree:
        entries, keys, chunks = {}, [], []
        pos, end = 0, len(data)
        while pos < end:
            space = data.index(b" ", pos)
            nul = data.index(b"\0", space)
            stop = nul + 21
            mode, name = int(data[pos:space], 8), data[space + 1:nul]
            entries[name.decode("utf-8", "surrogateescape")] = (mode, data[nul + 1:stop])
            keys.append(_sort_key(name, mode))
            chunks.append(data[pos:stop])
            pos = stop
        return cls(entries, keys, chunks)

    def changed(self, updates: dict[str, Entry | None]) -> _Tree:
        """A new tree with `updates` (name -> entry, None = removed) applied."""
        entries, keys, chunks = dict(self.entries), list(self.keys), list(self.chunks)
        for name, new in updates.items():
            old = entries.get(name)
            if old == new:
                continue
            raw = name.encode("utf-8", "surrogateescape")
            if old is not None:
                at = bisect.bisect_left(keys, _sort_key(raw, old[0]))
                del keys[at], chunks[at], entries[name]
            if new is not None:
                key = _sort_key(raw, new[0])
                at = bisect.bisect_left(keys, key)
                keys.insert(at, key)
                chunks.insert(at, b"%o %s\0%s" % (new[0], raw, new[1]))
                entries[name] = new
        return _Tree(entries, keys, chunks)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _sort_key(name: bytes, mode: int) -> bytes:
    return name + b"/" if mode == _TREE else name


@dataclass(frozen=True)
class Version:
    """One commit that changed a record."""
    commit: str                 # hex id
    time: datetime.datetime     # author time, timezone-aware
    author: str                 # "Name <email>"
    message: str


class History:
    """The git history of the store at `root` (see the module docstring).

    `lock` is a context manager factory excluding every other writer of the
    store; `record` and `recover` are called with it held.
    """

    index_delay = 0.5           # seconds between a commit and its index update
    repack_every = 16           # commits between two rollups of our small packs
    gc_every = 1024             # commits between two ``git gc --auto`` runs
    child_wait = 5.0            # seconds close() lets a running repack or gc finish
    git_lock_timeout = 10.0     # seconds to wait for a ref or index lock held by git
    stale_lock_age = 10.0       # a ref lock this old (mtime) was left by a crash
    retry_delay = 1.0           # seconds before retrying a failed background step
    tree_cache_size = 2048      # parsed trees kept (covers 256 shards x 8 types)

    def __init__(self, root: str, *, lock: Callable[[], AbstractContextManager[object]],
                 author: str | None, commit_mode: str, commit_delay: float,
                 fsync: bool) -> None:
        explicit = None if author is None else options.parse_author("author", author)
        self.root = root
        self.commit_mode = commit_mode
        self.commit_delay = float(commit_delay)
        self.fsync = fsync
        self._lock = lock
        self._git_lock = threading.RLock()       # GitPython is not thread-safe
        self._repo = _open_repo(root)
        try:
            self._setup(explicit)
        except BaseException:
            self._repo.close()
            raise
        self._trees: OrderedDict[bytes, _Tree] = OrderedDict()
        self._commit_trees: OrderedDict[str, bytes] = OrderedDict()
        self._unwritten: dict[bytes, tuple[bytes, bytes]] = {}     # id -> (kind, data)
        self._cond = threading.Condition()
        self._queue: list[tuple[list[str], str]] = []   # async: (relpaths, message)
        self._commit_due: float | None = None
        self._index_pending: set[str] = set()
        self._index_lock = threading.Lock()     # one index update at a time
        self._index_due: float | None = None
        self._index_gap = 0.0       # 4x the last index update's duration
        self._commits = 0
        self._jobs: list[list[str]] = []                 # housekeeping commands due
        self._child: subprocess.Popen[bytes] | None = None
        self._closing = self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"gitpersist-history {root}",
                                        daemon=True)
        self._thread.start()
        # A daemon thread stopped at interpreter exit could leave a ref lock
        # behind; close() at exit joins it first.
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def _setup(self, explicit: tuple[str, str] | None) -> None:
        repo = self._repo
        if repo.bare or repo.working_tree_dir is None:
            raise HistoryError(f"{repo.git_dir} is a bare repository: a store needs a work tree")
        self.worktree = os.path.realpath(repo.working_tree_dir)
        rel = os.path.relpath(os.path.realpath(self.root), self.worktree)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise HistoryError(f"store {self.root} is outside the work tree {self.worktree}")
        self.prefix = "" if rel == os.curdir else rel.replace(os.sep, "/") + "/"
        self.git_dir = os.path.realpath(repo.git_dir)
        self.common_dir = os.path.realpath(repo.common_dir)
        self._objects = os.path.join(self.common_dir, "objects")
        with repo.config_reader() as config:
            def value(section: str, option: str, default: object) -> object:
                try:
                    return config.get_value(section, option, default)
                except Exception:   # configparser errors on odd values
                    return default
            fmt = str(value("extensions", "objectformat", "sha1")).lower()
            refs = str(value("extensions", "refstorage", "files")).lower()
            if fmt != "sha1" or refs != "files":
                raise HistoryError(
                    f"{self.git_dir}: extensions.objectFormat={fmt}, refStorage={refs}: "
                    "gitpersist writes sha1 objects and files refs only")
            self._log_refs = str(value("core", "logallrefupdates", True)).lower() not in (
                "false", "0", "no", "off")
            if explicit is None:
                name, email = value("user", "name", ""), value("user", "email", "")
                default = options.parse_author("author", DEFAULT_AUTHOR)
                explicit = options.parse_author(
                    f"user.name/user.email in {self.git_dir}/config",
                    f"{name or default[0]} <{email or default[1]}>")
        self.author = git.Actor(*explicit)

    # -- writing ------------------------------------------------------------

    def record(self, changes: list[Change], message: str) -> None:
        """Commit `changes` (sync mode) or queue them (async mode).  Called
        with the store lock held, after the files are durable."""
        self._check_open()
        relpaths = [change.relpath for change in changes]
        if self.commit_mode == "async":
            self._enqueue(relpaths, message)
            return
        try:
            with self._git_lock:
                self._commit({c.relpath: c.data for c in changes}, message)
        except (OSError, HistoryError) as exc:
            self._enqueue(relpaths, message)        # the background thread retries
            raise HistoryError(f"commit of {', '.join(relpaths)} in {self.git_dir} failed "
                               f"({exc}); the files are written, the commit will be "
                               "retried") from None

    def commit_pending(self, relpath: str) -> None:
        """Before a sync-mode change of `relpath` (store lock held): if its
        file is not what HEAD holds and no commit of ours is queued for it,
        commit it as it is first.  That is another process's asynchronous
        change still queued there, a hand edit, or a crashed writer's
        leftover: it keeps a commit of its own, and the next commit's diff
        is the change its message describes."""
        if self.commit_mode != "sync":
            return              # our own queued changes look just the same
        with self._cond:
            if any(relpath in relpaths for relpaths, _ in self._queue):
                return
        with self._git_lock:
            data = self._read_file(relpath)
            if data is False:
                return
            [entry] = self._head_entries([relpath]).values()
            if (None if data is None else _object_id(b"blob", data)) == (entry and entry[1]):
                return
            self._commit({relpath: data}, (
                f"Commit {relpath}, changed before this process's next change\n\n"
                "It differed from HEAD: another process's asynchronous commit was\n"
                "still pending, the file was edited by hand, or a writer stopped\n"
                "before committing.\n"))

    def recover(self) -> list[str]:
        """Commit the store files that differ from HEAD, in one commit; return
        their relpaths.  Called at open with the store lock held."""
        self._check_open()
        self._remove_stale_temps()
        candidates = self._changed_on_disk()
        with self._git_lock:
            changes = {}
            for relpath, entry in self._head_entries(sorted(candidates)).items():
                data = self._read_file(relpath)
                if data is not False and (None if data is None else _object_id(b"blob", data)) \
                        != (entry and entry[1]):
                    changes[relpath] = data
            if changes and set(changes) <= set(META_FILES) and not any(
                    self._head_entries(sorted(changes)).values()):
                self._commit(changes, "gitpersist: new store\n\n"
                             + "".join(f"- {relpath}\n" for relpath in changes))
            elif changes:
                self._commit(changes, (
                    f"Commit {len(changes)} store files found changed at open\n\n"
                    "They differed from HEAD: a process stopped between writing and\n"
                    "committing, a file was edited by hand, or git was just enabled.\n\n"
                    + "".join(f"- {relpath}\n" for relpath in changes)))
        with self._cond:
            self._index_pending.update(candidates)
            self._index_due = time.monotonic()
        try:
            self._sync_index()
        except HistoryError as exc:     # e.g. the user's git holds index.lock
            LOG.warning("%s: index not updated yet, retrying in the background: %s",
                        self.root, exc)
        return list(changes)

    def flush(self) -> None:
        """Return once every change recorded so far is committed and the
        index is up to date."""
        if self._closed:
            return
        with self._lock():
            self._drain()
            for _ in range(3):      # again if HEAD moved under the update
                self._sync_index()
                if not self._index_pending:
                    break

    # -- reading ------------------------------------------------------------

    def versions(self, relpath: str, limit: int | None = None) -> list[Version]:
        """The commits that changed `relpath`, newest first."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ConfigError(f"limit={limit!r}: a number of versions, 0 or more")
        self._settle()
        with self._git_lock:
            if limit == 0 or self._read_ref(self._head_ref()) is None:
                return []
            args = ["-z", "--format=%H%x00%aI%x00%an <%ae>%x00%B", "--no-show-signature"]
            if limit is not None:
                args.append(f"--max-count={limit}")
            out = self._git("log", *args, "HEAD", "--", f":(literal){self.prefix}{relpath}")
        fields = out.split("\0") if out else []
        return [Version(fields[i], datetime.datetime.fromisoformat(fields[i + 1]),
                        fields[i + 2], fields[i + 3].strip())
                for i in range(0, len(fields) - 3, 4)]

    def read(self, relpath: str, rev: str) -> bytes | None:
        """The content of `relpath` at revision `rev`; None if absent there."""
        self._settle()
        with self._git_lock:
            entry = self._lookup(self._commit_tree(self._resolve(rev)), self.prefix + relpath)
            if entry is None or entry[0] == _TREE:
                return None
            return self._read_object(entry[1], "blob")

    def diff(self, relpath: str, rev1: str, rev2: str | None = None) -> str:
        """Unified diff of `relpath` from `rev1` to `rev2` (None: the file as
        it is now); empty when they are equal."""
        old = self.read(relpath, rev1)
        if rev2 is None:
            new = self._read_file(relpath)
            new = None if new is False else new
        else:
            new = self.read(relpath, rev2)
        return "".join(difflib.unified_diff(
            _lines(old), _lines(new), f"a/{relpath}", f"b/{relpath}",
            rev1, rev2 or "working file"))

    # -- life cycle ---------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, update the index, stop the thread and the
        gc child, and release the repository's processes."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        atexit.unregister(self._atexit)
        try:
            if self._queue or self._index_pending:
                with self._lock():
                    self._drain()
                    self._sync_index()
        except (GitpersistError, OSError) as exc:
            LOG.warning("%s: closing with changes not committed (%s); the store's next "
                        "open commits them", self.root, exc)
        finally:
            # The thread ends at once, unless it waits for the store lock that
            # our caller holds; then it ends when that is released, finding
            # nothing left to do.
            if self._thread is not threading.current_thread():
                self._thread.join(self.child_wait)
            self._stop_child()
            with self._git_lock:
                self._closed = True
                self._repo.close()
                self._trees.clear()

    def __repr__(self) -> str:
        return f"<gitpersist.History {self.root} in {self.worktree}>"

    # -- commit building ----------------------------------------------------

    def _commit(self, changes: dict[str, bytes | None], message: str) -> str | None:
        """Commit `changes` (relpath -> content, None = deleted) on top of
        HEAD; return the commit id, or None if the tree did not change."""
        try:
            return self._try_commit(changes, clean_message(message))
        finally:
            self._unwritten.clear()     # what a failed or empty attempt left

    def _try_commit(self, changes: dict[str, bytes | None], message: str) -> str | None:
        blobs = {self.prefix + relpath: None if data is None else self._write_object(b"blob", data)
                 for relpath, data in changes.items()}
        for _ in range(50):
            ref = self._head_ref()
            parent = self._read_ref(ref)
            base = self._commit_tree(parent) if parent else None
            tree = self._apply(base, _nest(blobs))
            if tree == base:
                return None
            if tree is None:
                tree = self._write_tree(_Tree({}, [], []))
            commit = self._write_commit(tree, parent, message)
            self._write_pack()
            if self._compare_and_swap(ref, commit, parent, message):
                self._cache_commit_tree(commit, tree)
                with self._cond:
                    self._index_pending.update(changes)
                    if self._index_due is None:
                        self._index_due = time.monotonic() + max(self.index_delay,
                                                                 self._index_gap)
                    self._commits += 1
                    for every, job in ((self.repack_every, _REPACK), (self.gc_every, _GC)):
                        if self._commits % every == 0 and job not in self._jobs:
                            self._jobs.append(job)
                    self._cond.notify_all()
                return commit
        raise HistoryError(f"{self.git_dir}: HEAD kept moving; gave up committing")

    def _apply(self, tree: bytes | None, changes: dict[str, object]) -> bytes | None:
        """The id of `tree` with `changes` applied (a nested dict of name ->
        blob id, None, or a sub-dict); None for an empty tree."""
        base = self._tree(tree) if tree is not None else _Tree({}, [], [])
        updates: dict[str, Entry | None] = {}
        for name, change in changes.items():
            if isinstance(change, dict):
                old = base.entries.get(name)
                sub = self._apply(old[1] if old and old[0] == _TREE else None, change)
                updates[name] = None if sub is None else (_TREE, sub)
            else:
                updates[name] = None if change is None else (_FILE, change)  # type: ignore[assignment]
        if all(base.entries.get(name) == entry for name, entry in updates.items()):
            return tree
        new = base.changed(updates)
        return self._write_tree(new) if new.entries else None

    def _write_tree(self, tree: _Tree) -> bytes:
        binsha = self._write_object(b"tree", tree.data())
        self._cache_tree(binsha, tree)
        return binsha

    def _write_commit(self, tree: bytes, parent: str | None, message: str) -> str:
        now = int(time.time())
        offset = -time.localtime(now).tm_gmtoff      # GitPython: seconds west of UTC
        commit = git.Commit(
            self._repo, git.Commit.NULL_BIN_SHA, tree=git.Tree(self._repo, tree),
            author=self.author, authored_date=now, author_tz_offset=offset,
            committer=self.author, committed_date=now, committer_tz_offset=offset,
            message=message, encoding=git.Commit.default_encoding,
            parents=[git.Commit(self._repo, bytes.fromhex(parent))] if parent else [])
        stream = io.BytesIO()
        commit._serialize(stream)   # what Commit.create_from_tree uses; it has no public twin
        return self._write_object(b"commit", stream.getvalue()).hex()

    def _write_object(self, kind: bytes, data: bytes) -> bytes:
        """Add an object to the pack `_write_pack` writes next; return its
        binary id."""
        binsha = _object_id(kind, data)
        self._unwritten.setdefault(binsha, (kind, data))
        if len(self._unwritten) >= 20_000:      # bounds the memory of a big batch
            self._write_pack()
        return binsha

    def _write_pack(self) -> None:
        """Write the objects built so far as one pack and its index.

        One pack per commit rather than loose objects: 2 files instead of
        ~5, so with fsync 2 file and 1 folder fsyncs instead of ~5 + 5
        (measured: 1.5 ms against 5.5 ms a commit).  `packfile.build` makes
        the pack and the index; we put them in place like git does: temp
        files, fsynced, the .pack renamed before the .idx (git finds packs
        by their index), then the folder fsynced.  The small packs are
        rolled up in the background (``git repack --geometric``)."""
        objects, self._unwritten = self._unwritten, {}
        if not objects:
            return
        # zlib level 1: faster than git's default (6) for packs, a little
        # bigger; records are small and compress well either way.
        pack_sha, pack_data, index_data = packfile.build(objects, compression=1)
        folder = os.path.join(self._objects, "pack")
        os.makedirs(folder, exist_ok=True)
        name = os.path.join(folder, f"pack-{pack_sha.hex()}")
        temps = []
        try:
            for data, kind in ((pack_data, "pack"), (index_data, "idx")):
                temp = os.path.join(folder, f"tmp_{kind}_{os.getpid()}_{secrets.token_hex(4)}")
                fd = os.open(temp, _LOCK_FLAGS, 0o444)
                temps.append(temp)
                try:
                    files.write_all(fd, data)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(temps[0], name + ".pack")
            os.replace(temps[1], name + ".idx")
        except BaseException:
            for temp in temps:
                files.unlink_quietly(temp)
            raise
        if self.fsync:
            files.fsync_dir(folder)

    # -- refs ---------------------------------------------------------------
    # Refs are moved here rather than with GitPython: its SymbolicReference
    # writes through a lock file but never checks the old value, so a commit
    # made by another git process in between would be silently dropped.
    # This is git's files-backend protocol: create <ref>.lock exclusively,
    # check the current value, write, append to the reflog, rename.

    def _head_ref(self) -> str:
        """The ref HEAD points to ("refs/heads/main"), or "HEAD" if detached."""
        path = os.path.join(self.git_dir, "HEAD")
        try:
            with open(path, "rb") as file:
                data = file.read().strip()
        except OSError as exc:
            raise HistoryError(f"cannot read {path}: {exc.strerror}") from None
        if not data.startswith(b"ref:"):
            return "HEAD"
        ref = data[4:].strip().decode("utf-8", "replace")
        if not ref.startswith("refs/") or ".." in ref.split("/") or ref.endswith(".lock"):
            raise HistoryError(f"{path}: unsupported HEAD target {ref!r}")
        return ref

    def _ref_path(self, ref: str) -> str:
        return os.path.join(self.git_dir if ref == "HEAD" else self.common_dir, *ref.split("/"))

    def _read_ref(self, ref: str) -> str | None:
        """The commit id `ref` holds (loose, else packed), or None."""
        path = self._ref_path(ref)
        try:
            with open(path, "rb") as file:
                data = file.read().strip()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise HistoryError(f"cannot read ref {path}: {exc.strerror}") from None
        if data is not None:
            if not _HEX40.fullmatch(data):
                raise HistoryError(f"ref {path}: not a commit id ({data[:60]!r})")
            return data.decode()
        if ref == "HEAD":
            return None
        try:
            with open(os.path.join(self.common_dir, "packed-refs"), "rb") as file:
                target = b" " + ref.encode() + b"\n"
                for line in file:
                    if line.endswith(target) and _HEX40.fullmatch(line[:40]):
                        return line[:40].decode()
        except FileNotFoundError:
            pass
        return None

    def _compare_and_swap(self, ref: str, new: str, old: str | None, message: str) -> bool:
        """Point `ref` at `new` if it still holds `old` and HEAD still points
        to it; False if not."""
        path = self._ref_path(ref)
        lock = path + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = self._take_ref_lock(lock)
        done = False
        try:
            if self._head_ref() != ref or self._read_ref(ref) != old:
                return False
            files.write_all(fd, new.encode() + b"\n")
            if self.fsync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            subject = message.split("\n", 1)[0]
            entry = f"commit{'' if old else ' (initial)'}: {subject}"
            self._append_reflog(ref, old, new, entry)
            if ref != "HEAD":
                self._append_reflog("HEAD", old, new, entry)
            os.replace(lock, path)
            done = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not done:
                files.unlink_quietly(lock)
        if self.fsync:
            files.fsync_dir(os.path.dirname(path))
        return True

    def _take_ref_lock(self, lock: str) -> int:
        deadline = time.monotonic() + self.git_lock_timeout
        delay = 0.001
        while True:
            try:
                return os.open(lock, _LOCK_FLAGS, 0o666)
            except FileExistsError:
                if time.monotonic() > deadline:
                    # git holds a ref lock for milliseconds (and waits only
                    # 100 ms for another's): one this old was left by a
                    # process killed while committing, ours or git's.
                    if self._remove_stale_lock(lock):
                        continue
                    raise HistoryError(
                        f"{lock} exists: another git process is updating the branch; if "
                        "none is running, a crashed one left it: remove it") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _remove_stale_lock(self, lock: str) -> bool:
        try:
            age = time.time() - os.stat(lock).st_mtime
        except FileNotFoundError:
            return True
        if age < self.stale_lock_age:
            return False
        LOG.warning("%s: removing a lock left %.0f s ago by a process that crashed "
                    "while committing", lock, age)
        files.unlink_quietly(lock)
        return True

    def _append_reflog(self, ref: str, old: str | None, new: str, message: str) -> None:
        if not (self._log_refs and (ref == "HEAD" or ref.startswith("refs/heads/"))):
            return
        path = os.path.join(self.git_dir if ref == "HEAD" else self.common_dir,
                            "logs", *ref.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        now = int(time.time())
        offset = time.localtime(now).tm_gmtoff // 60
        tz = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        line = (f"{old or _NULL} {new} {self.author.name} <{self.author.email}> {now} {tz}\t"
                f"{message}\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            files.write_all(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)

    # -- objects and trees --------------------------------------------------

    def _read_object(self, binsha: bytes, kind: str) -> bytes:
        try:
            stream = self._repo.odb.stream(binsha)
            data = stream.read()
        except (gitdb.exc.BadObject, ValueError) as exc:
            raise HistoryError(f"{self.git_dir}: missing {kind} {binsha.hex()} ({exc})") from None
        if stream.type != kind.encode():
            raise HistoryError(f"{self.git_dir}: {binsha.hex()} is a "
                               f"{stream.type.decode()}, not a {kind}")
        return data

    def _commit_tree(self, commit: str) -> bytes:
        tree = self._commit_trees.get(commit)
        if tree is None:
            data = self._read_object(bytes.fromhex(commit), "commit")
            if not data.startswith(b"tree ") or not _HEX40.fullmatch(data[5:45]):
                raise HistoryError(f"{self.git_dir}: commit {commit} has no tree line")
            tree = bytes.fromhex(data[5:45].decode())
            self._cache_commit_tree(commit, tree)
        return tree

    def _cache_commit_tree(self, commit: str, tree: bytes) -> None:
        """Remember a commit's tree; the 64 most recent are kept (every
        commit adds one: unbounded, it grew for the life of the process)."""
        self._commit_trees[commit] = tree
        while len(self._commit_trees) > 64:
            self._commit_trees.popitem(last=False)

    def _tree(self, binsha: bytes) -> _Tree:
        tree = self._trees.get(binsha)
        if tree is not None:
            self._trees.move_to_end(binsha)
            return tree
        tree = _Tree.parse(self._read_object(binsha, "tree"))
        self._cache_tree(binsha, tree)
        return tree

    def _cache_tree(self, binsha: bytes, tree: _Tree) -> None:
        self._trees[binsha] = tree
        self._trees.move_to_end(binsha)
        while len(self._trees) > self.tree_cache_size:
            self._trees.popitem(last=False)

    def _lookup(self, tree: bytes | None, path: str) -> Entry | None:
        """The (mode, id) at `path` below `tree`, or None."""
        entry = None if tree is None else (_TREE, tree)
        for name in path.split("/"):
            if entry is None or entry[0] != _TREE:
                return None
            entry = self._tree(entry[1]).entries.get(name)
        return entry

    def _resolve(self, rev: str) -> str:
        """The commit id named by `rev` (an id, a branch, HEAD~2, a tag...)."""
        try:
            obj = self._repo.rev_parse(rev)
            while obj.type == "tag":
                obj = obj.object
        except (git.BadName, gitdb.exc.BadObject, ValueError, IndexError, TypeError):
            raise HistoryError(f"revision {rev!r} not found in {self.git_dir}") from None
        if obj.type != "commit":
            raise HistoryError(f"revision {rev!r} is a {obj.type}, not a commit")
        return obj.hexsha

    # -- background work ----------------------------------------------------

    def _enqueue(self, relpaths: list[str], message: str) -> None:
        with self._cond:
            self._queue.append((relpaths, message))
            if self._commit_due is None:
                self._commit_due = time.monotonic() + self.commit_delay
            self._cond.notify_all()

    def _drain(self) -> None:
        """Commit the queued changes as the files now are.  Store lock held."""
        with self._cond:
            items = list(self._queue)
        if not items:
            return
        changes: dict[str, bytes | None] = {}
        for relpaths, _ in items:
            for relpath in relpaths:
                if relpath not in changes:
                    data = self._read_file(relpath)
                    if data is not False:
                        changes[relpath] = data
        if len(items) == 1:
            message = items[0][1]
        else:
            message = f"{len(items)} changes\n\n" + "".join(
                "- " + clean_message(text).rstrip("\n").replace("\n", "\n  ") + "\n"
                for _, text in items)
        with self._git_lock:
            self._commit(changes, message)
        with self._cond:
            del self._queue[:len(items)]
            self._commit_due = (time.monotonic() + self.commit_delay) if self._queue else None

    def _sync_index(self, *, only_if_due: bool = False) -> None:
        """`_update_index`, one run at a time in this process: an update
        computed before a newer commit, if it landed after that commit's own
        update (by flush or close), would put the older version back.

        `only_if_due` (the background thread): skip it if, while this thread
        waited for its turn, another update did the work and rescheduled."""
        with self._index_lock:
            if only_if_due:
                with self._cond:
                    if self._index_due is None or self._index_due > time.monotonic():
                        return
            self._update_index()

    def _update_index(self) -> None:
        """Set the index entries of the committed paths to their HEAD
        version, in one ``git update-index`` run.

        Needs neither the store lock nor the repo lock while git runs (a
        100k-entry index takes 50-150 ms to rewrite): afterwards, the paths
        whose HEAD version changed meanwhile (a commit of ours or of another
        process, whose own update may have come first) stay pending."""
        with self._cond:
            pending = sorted(self._index_pending)
        if not pending:
            return
        with self._git_lock:
            if self._closed:
                return
            wanted = self._head_entries(pending)
        lines = []
        for relpath in pending:
            full = (self.prefix + relpath).encode("utf-8", "surrogateescape")
            mode, binsha = wanted[relpath] or (0, bytes(20))    # mode 0 removes the entry
            lines.append(b"%o %s\t%s\0" % (mode, binsha.hex().encode(), full))
        # One process for the whole batch; GitPython has no way to feed
        # stdin to a command short of a Popen, so run it directly.  Another
        # git command holding index.lock makes it fail at once: retry a while.
        started = time.monotonic()
        deadline = started + self.git_lock_timeout
        while True:
            run = subprocess.run(
                [self._repo.git.GIT_PYTHON_GIT_EXECUTABLE, "update-index", "-z", "--index-info"],
                input=b"".join(lines), cwd=self.worktree, capture_output=True, check=False)
            if run.returncode == 0 or b"index.lock" not in run.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if run.returncode != 0:
            raise HistoryError(f"git update-index in {self.worktree} failed: "
                               f"{run.stderr.decode(errors='replace').strip()}")
        finished = time.monotonic()
        with self._git_lock:        # no commit of ours in between
            if self._closed:
                return
            now = self._head_entries(pending)
            with self._cond:
                self._index_pending.difference_update(
                    relpath for relpath in pending if now[relpath] == wanted[relpath])
                # Keeps index work under a fifth of the time on big indexes.
                self._index_gap = 4 * (finished - started)
                self._index_due = (finished + max(self.index_delay, self._index_gap)
                                   if self._index_pending else None)

    def _head_entries(self, relpaths: list[str]) -> dict[str, Entry | None]:
        """The (mode, blob id) of each store path in HEAD, None if absent."""
        head = self._read_ref(self._head_ref())
        tree = self._commit_tree(head) if head else None
        found = {}
        for relpath in relpaths:
            entry = self._lookup(tree, self.prefix + relpath)
            found[relpath] = None if entry is None or entry[0] == _TREE else entry
        return found

    def _run(self) -> None:
        """The background thread: async commits, index updates, gc."""
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return
                    now = time.monotonic()
                    due = min((t for t in (self._commit_due, self._index_due) if t is not None),
                              default=None)
                    if due is not None and due <= now:
                        break
                    if self._jobs and self._child is None:
                        break
                    wait = None if due is None else due - now
                    if self._child is not None:
                        wait = 0.2 if wait is None else min(wait, 0.2)
                    self._cond.wait(wait)
                    self._reap_child()
            try:
                if self._commit_due is not None and self._commit_due <= now:
                    with self._lock():
                        if self._closing:       # close() does what is left
                            return
                        self._drain()
                if self._index_due is not None and self._index_due <= now:
                    self._sync_index(only_if_due=True)
                self._start_job()
            except Exception as exc:     # the thread must live on: retry later
                if isinstance(exc, StoreError) and self._closing:
                    return
                LOG.warning("%s: background commit failed, retrying in %s s: %s",
                            self.root, self.retry_delay, exc,
                            exc_info=not isinstance(exc, GitpersistError | OSError))
                with self._cond:
                    retry = time.monotonic() + self.retry_delay
                    if self._commit_due is not None:
                        self._commit_due = max(self._commit_due, retry)
                    if self._index_due is not None:
                        self._index_due = max(self._index_due, retry)

    def _start_job(self) -> None:
        """Start the next housekeeping command, if none is running."""
        with self._cond:
            if not self._jobs or self._child is not None or self._closing:
                return
            args = self._jobs.pop(0)
            self._child = subprocess.Popen(
                [self._repo.git.GIT_PYTHON_GIT_EXECUTABLE, *args], cwd=self.worktree,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self._cond.notify_all()

    def _reap_child(self) -> None:
        child = self._child
        if child is not None and child.poll() is not None:
            error = child.stderr.read().decode(errors="replace").strip()
            child.stderr.close()
            if child.returncode == 129 and child.args[1:] == _REPACK:
                # git < 2.32 has no --geometric: leave the packs to gc --auto
                # (a full repack past gc.autoPackLimit packs).
                self.repack_every = 1 << 62
            if child.returncode:
                LOG.warning("%s: git %s exited with %s: %s", self.worktree,
                            " ".join(child.args[1:]), child.returncode, error)
            self._child = None

    def _stop_child(self) -> None:
        with self._cond:
            child, self._child = self._child, None
        if child is None:
            return
        try:
            child.wait(self.child_wait)
        except subprocess.TimeoutExpired:
            child.terminate()   # git repack and gc are safe to stop: they rename into place
            child.wait()
        child.stderr.close()

    # -- helpers ------------------------------------------------------------

    def _settle(self) -> None:
        """Commit what this process has queued, so history queries see it."""
        if self._closed:
            raise HistoryError(f"history of {self.root} is closed")
        if self._queue:
            with self._lock():
                self._drain()

    def _remove_stale_temps(self) -> None:
        """Pack temp files of our processes that died while writing them."""
        folder = os.path.join(self._objects, "pack")
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            parts = name.split("_")
            if (len(parts) == 4 and parts[0] == "tmp" and parts[1] in ("pack", "idx")
                    and parts[2].isdigit() and not files.process_alive(int(parts[2]))):
                files.unlink_quietly(os.path.join(folder, name))

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise HistoryError(f"history of {self.root} is closed")

    def _git(self, *args: str) -> str:
        try:
            return getattr(self._repo.git, args[0])(*args[1:])
        except git.GitCommandError as exc:
            raise HistoryError(f"git {args[0]} in {self.worktree} failed: "
                               f"{(exc.stderr or '').strip()}") from None

    def _changed_on_disk(self) -> set[str]:
        """Store relpaths git status reports as differing anywhere between
        HEAD, the index and the work tree, ignored files included."""
        with self._git_lock:
            out = self._git("status", "--porcelain=v1", "-z", "--untracked-files=all",
                            "--ignored=traditional", "--no-renames", "--ignore-submodules=all",
                            "--", f":(literal){self.prefix}" if self.prefix else ".")
        found = set()
        for item in out.split("\0"):
            path = item[3:]
            if not path.startswith(self.prefix):
                continue
            relpath = path[len(self.prefix):]
            if is_store_file(relpath):
                found.add(relpath)
        return found

    def _read_file(self, relpath: str) -> bytes | None | bool:
        """The store file's content, None if absent, False if unreadable
        (a folder or symlink in its place: left out of commits)."""
        path = os.path.join(self.root, *relpath.split("/"))
        try:
            found = files.read(path)
        except OSError as exc:
            LOG.warning("%s: not committed: %s", path, exc.strerror or exc)
            return False
        return None if found is None else found[0]


def _open_repo(root: str) -> git.Repo:
    """The repository enclosing `root`, or a new one at `root`."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        pass
    except git.NoSuchPathError:
        raise StoreError(f"store folder {root} is missing") from None
    try:
        return git.Repo.init(root)
    except git.GitCommandError as exc:
        raise HistoryError(f"git init {root} failed: {(exc.stderr or '').strip()}") from None


def _nest(blobs: dict[str, bytes | None]) -> dict[str, object]:
    """{"a/b/c": x} -> {"a": {"b": {"c": x}}}"""
    tree: dict[str, object] = {}
    for path, blob in blobs.items():
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})  # type: ignore[assignment]
        node[name] = blob
    return tree


def _object_id(kind: bytes, data: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0%s" % (kind, len(data), data)).digest()


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(keepends=True)


def _close_at_exit(ref: weakref.ref[History]) -> None:
    history = ref()
    if history is not None:
        history.close()
