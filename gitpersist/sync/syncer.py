"""`Syncer`: see the package docstring (`gitpersist.sync`)."""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import os
import random
import secrets
import threading
import time
import weakref
from collections.abc import Mapping

import filelock
import orjson

from .. import encoding, files
from ..errors import GitpersistError, HistoryError, StoreError, SyncError
from ..history.index import index_info, update_index
from ..history.runner import last_lines
from ..layout import FORMAT_FILE, Change
from .merge import LOCAL, FormatUnion, LaterChangeWins, Resolver, plan
from .plumbing import EMPTY_TREE, Entry, LocalGit
from .port import StorePort
from .remote import Remote
from .report import Conflict, SyncReport

LOG = logging.getLogger(__package__)   # gitpersist.sync, as before it was a package

SYNC_LOCK = "gitpersist-sync.lock"     # in the repository's git folder


class _Restart(Exception):
    """The branch or the files moved under the integration: compute again."""


class Syncer:
    """Syncs `store` with `remote` (see the module docstring).  Created by
    the store; `close` stops its thread."""

    attempts = 5                # integrate-and-push rounds before giving up
    network_timeout = 120.0     # seconds for one ls-remote, fetch or push
    local_timeout = 120.0       # seconds for one local git command
    lock_timeout = 600.0        # seconds to wait for another process's sync
    retry_delay = 5.0           # seconds before an automatic sync retries

    def __init__(self, store: StorePort, remote: str, *, every: float | None = None,
                 on_open: bool = False, after_commit: bool = False) -> None:
        self._bind(store, remote)
        self.every = None if every is None else float(every)
        self.after_commit = after_commit
        self.link = Remote(remote, self.git, self)
        self._mutex = threading.Lock()
        self._file_lock = filelock.FileLock(os.path.join(self._history.common_dir, SYNC_LOCK),
                                            timeout=self.lock_timeout, mode=store.options.file_mode,
                                            thread_local=False)
        self._cond = threading.Condition()
        self._unsent = False        # commits since the last successful sync
        self._due: float | None = None
        self._stopping = self._closed = False
        self._thread: threading.Thread | None = None
        if on_open:
            try:
                self.sync()
            except GitpersistError as exc:
                LOG.warning("%s: sync on open failed, the store opens anyway: %s",
                            store.root, exc)
        if self.every is not None or after_commit:
            self._due = None if self.every is None else time.monotonic() + self.every
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"gitpersist-sync {store.root}")
            self._thread.start()
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def _bind(self, store: StorePort, remote: str) -> None:
        """What the git work needs (all that `finish_interrupted` sets up)."""
        self._store = store
        self._history = store.history
        self.remote = remote
        self.git = LocalGit.of(self._history, timeout=self.local_timeout)
        self.worktree = self.git.worktree
        self.git_dir = self.git.git_dir
        self.prefix = self.git.prefix
        self._refs = self._history.refs
        self.resolvers: list[Resolver] = [FormatUnion(self.git), LaterChangeWins()]
        self.runner = self.git.runner
        digest = hashlib.sha1(self.prefix.encode("utf-8", "surrogateescape")).hexdigest()
        self._journal = os.path.join(self.git_dir, f"gitpersist-sync-{digest[:12]}.pending")

    # -- public ---------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Fetch, integrate, push (see the module docstring); raise
        `SyncError` if that fails."""
        if self._closed:
            raise SyncError(f"sync of {self._store.root} with {self.remote!r}: store is closed")
        with self._mutex:
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise SyncError(f"sync with {self.remote!r}: {self._file_lock.lock_file} "
                                f"still held by another process after {self.lock_timeout} s"
                                ) from None
            try:
                with self._cond:
                    self._unsent = False
                try:
                    return self._sync()
                except BaseException:
                    with self._cond:
                        self._unsent = True
                    raise
            finally:
                self._file_lock.release()

    def committed(self) -> None:
        """Called by the store after each commit (or queued commit)."""
        with self._cond:
            self._unsent = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the background thread (after its current sync); with
        ``sync_after_commit``, send what is still unsent, once."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        atexit.unregister(self._atexit)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.network_timeout * 3)
        if self.after_commit and self._unsent:
            try:
                self.sync()
            except GitpersistError as exc:
                LOG.warning("%s: last sync with %r failed, commits stay local until the "
                            "next sync: %s", self._store.root, self.remote, exc)
        self._closed = True

    # -- the background thread -------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._due is not None and now >= self._due:
                        break
                    if self.after_commit and self._unsent:
                        break
                    self._cond.wait(None if self._due is None else self._due - now)
            try:
                self.sync()
                failed = False
            except Exception as exc:    # the thread lives on: retry later
                if isinstance(exc, StoreError | HistoryError) and self._stopping:
                    return
                failed = True
                LOG.warning("%s: automatic sync with %r failed, retrying: %s",
                            self._store.root, self.remote, exc,
                            exc_info=not isinstance(exc, GitpersistError | OSError))
            with self._cond:
                now = time.monotonic()
                if self.every is not None:
                    self._due = now + (min(self.every, self.retry_delay) if failed
                                       else self.every)
                elif failed:
                    self._due = now + self.retry_delay
                else:
                    self._due = None
                if failed and self.after_commit:
                    # wait for the retry time even though commits are unsent
                    self._cond.wait_for(lambda: self._stopping or time.monotonic() >= self._due,
                                        self.retry_delay)

    # -- one sync ----------------------------------------------------------------

    def _sync(self) -> SyncReport:
        self.link.refresh()
        self._store.flush()
        ref = self.git.branch_ref(self.remote)
        remote_ref = self.link.upstream(ref)
        report = SyncReport(self.remote, remote_ref, self.git.rev(ref), None, None)
        for attempt in range(1, self.attempts + 1):
            report.attempts = attempt
            remote_head = self.link.fetch(remote_ref)
            report.remote_head = remote_head
            with self._store.exclusive():     # the store's write lock
                head = self._integrate(ref, remote_head, report)
            report.head = head
            if head is None or head == remote_head:
                return report
            if self.link.push(head, remote_ref, remote_head):
                report.pushed = True
                return report
            LOG.info("%s: push to %r rejected (the remote moved); again", self.worktree,
                     self.remote)
            time.sleep(random.uniform(0.05, 0.3) * attempt)    # two hosts: don't lockstep
        raise SyncError(f"sync with remote {self.remote!r} ({self.link.url}): the push was "
                        f"rejected {self.attempts} times (the remote keeps moving); local "
                        "commits are kept, the next sync tries again")

    def _integrate(self, ref: str, remote_head: str | None, report: SyncReport) -> str | None:
        """Make the local branch contain `remote_head`; return its commit.
        Called with the store's write lock held."""
        for _ in range(self.attempts):
            self._store.flush()       # this process's queued commits
            try:
                return self._integrate_once(ref, remote_head, report)
            except _Restart:
                continue
        raise SyncError(f"sync with remote {self.remote!r}: {ref} in {self.git_dir} kept "
                        "moving during the merge; try again")

    def _integrate_once(self, ref: str, remote: str | None, report: SyncReport) -> str | None:
        local = self.git.rev(ref)
        if remote is None or remote == local:
            return local
        if local is None:
            raise SyncError(f"sync with remote {self.remote!r}: {ref} has no commit yet")
        if self.git.is_ancestor(remote, local):
            return local                        # nothing new: just push
        base = self.git.merge_base(local, remote)
        base_tree = self.git.tree_of(base) if base else EMPTY_TREE
        ours = self.git.diff(base_tree, local)     # full path -> (before, after)
        theirs = self.git.diff(base_tree, remote)
        ours_other = [p for p in ours if not self.git.is_store(p)]
        theirs_other = [p for p in theirs if not self.git.is_store(p)]

        def last_change(side: str, path: str) -> tuple[str, int]:
            return self.git.last_change(base, local if side == LOCAL else remote, path)
        decisions = plan(ours, theirs, prefix=self.git.prefix, last_change=last_change,
                         resolvers=self.resolvers)
        decided, local_values = decisions.decided, decisions.local
        conflicts, changes = decisions.conflicts, decisions.changes
        for path, entry in changes.items():
            if entry is not None and entry[0] not in (0o100644, 0o100755):
                raise SyncError(f"sync with remote {self.remote!r}: {path} in {remote[:12]} "
                                f"is not a regular file (mode {entry[0]:o}); the store "
                                "writes only files there")

        # The tree outside the store: ours, theirs, or git's merge of both.
        if not theirs_other:
            other_tree, others_change = self.git.tree_of(local), False
        elif not ours_other or base == local:
            other_tree, others_change = self.git.tree_of(remote), True
        else:
            other_tree, others_change = self._merge_other(local, remote, base is None), True
        overlays = [local_values] if others_change else []
        if base != local:
            overlays.append(decided)
        trees = self._overlay(other_tree, overlays) if overlays else []
        if base == local:
            new = remote                        # fast-forward
            subject = f"fast-forward to {self.remote} {report.branch}"
        else:
            message = self._merge_message(report.branch, changes, conflicts)
            new = self.git.commit_tree(trees[-1], [local, remote], message)
            subject = message.split("\n", 1)[0]

        self._commit_uncommitted(changes, local_values)     # may raise _Restart
        contents = self.git.blobs(sorted({e[1] for e in changes.values() if e is not None}))
        if others_change:
            self._checkout_other(self.git.tree_of(local), trees[0])
        # From the first file written to the branch moved, a note says what
        # to finish if the process dies (see `finish_interrupted`).
        files.write_atomic(self.git_dir, os.path.basename(self._journal), orjson.dumps(
            {"commit": new, "remote": self.remote, "branch": report.branch}),
            fsync=self._store.options.fsync, file_mode=self._store.options.file_mode,
            dir_mode=self._store.options.dir_mode)
        received = []
        for path, entry in changes.items():
            relpath = path[len(self.prefix):]
            self._store.apply_received(relpath, None if entry is None else contents[entry[1]])
            received.append(relpath)
        try:        # git's compare-and-swap, as every commit of the history
            moved = self._refs.set_if_equals(ref, local, new, f"gitpersist sync: {subject}")
        except (HistoryError, OSError) as exc:
            raise SyncError(f"moving {ref} in {self.git_dir} to {new[:12]} failed: "
                            f"{exc}") from None
        if not moved:
            raise _Restart()
        files.unlink_quietly(self._journal)
        self._update_index(changes)
        if self.prefix + FORMAT_FILE in changes:
            # The other host's secret fields apply here from now on.
            self._store.adopt_format()
        for conflict in conflicts:
            LOG.warning("%s: %s changed on both sides (sync with %s); kept the %s version "
                        "(commit %s), the %s one (commit %s) stays in history",
                        self._store.root, conflict.relpath, self.remote, conflict.winner,
                        conflict.winner_commit[:12],
                        "remote" if conflict.winner == "local" else "local",
                        conflict.loser_commit[:12])
        report.received.extend(received)
        report.conflicts.extend(conflicts)
        return new

    def _merge_message(self, branch: str, changes: Mapping[str, Entry | None],
                       conflicts: list[Conflict]) -> str:
        lines = [f"Sync with {self.remote} {branch}: {len(changes)} store file(s) "
                 f"from the remote, {len(conflicts)} conflict(s)"]
        if conflicts:
            lines += ["", "Changed on both sides; the later change wins (gitpersist.sync):"]
            for c in conflicts:
                lines.append(f"- {c.relpath}: kept {c.winner} {c.winner_commit[:12]} over "
                             f"{'remote' if c.winner == 'local' else 'local'} "
                             f"{c.loser_commit[:12]}")
        return "\n".join(lines) + "\n"

    # -- the work tree -----------------------------------------------------------

    def _commit_uncommitted(self, changes: Mapping[str, Entry | None],
                            local_values: Mapping[str, Entry | None]) -> None:
        """Commit the files about to change whose content on disk is neither
        the local commit's nor the merge's (a change not committed yet), then
        restart: the merge must see them."""
        found = []
        for path, entry in changes.items():
            relpath = path[len(self.prefix):]
            try:
                data = files.read(self._abspath(relpath))
            except OSError as exc:
                raise SyncError(f"sync with {self.remote!r}: cannot read "
                                f"{self._abspath(relpath)}: {exc.strerror or exc}") from None
            disk = None if data is None else encoding.revision_of(data[0])
            wanted = {None if e is None else e[1] for e in (entry, local_values[path])}
            if disk not in wanted:
                found.append(Change(relpath, None if data is None else data[0], disk))
        if not found:
            return
        self._history.record(found, f"Commit {len(found)} store file(s) changed before a "
                                    "sync\n\n" + "".join(f"- {c.relpath}\n" for c in found))
        self._history.flush()
        raise _Restart()

    def _checkout_other(self, current: str, target: str) -> None:
        """Update the files outside the store from `current` to `target`, by
        git's rules (refusing to overwrite local changes)."""
        # Stat info first, as git checkout and merge do: a file edited and
        # edited back is not a local change.  (Exits 1 when files differ.)
        self.runner.run_retrying_index(["update-index", "-q", "--refresh"])
        run = self.runner.run_retrying_index(["read-tree", "-m", "-u", current, target])
        if run.returncode != 0:
            raise SyncError(
                f"sync with {self.remote!r}: the remote changed files outside the store "
                f"that have local changes in {self.worktree}; commit or stash them and "
                f"sync again ({last_lines(run.stderr)})")

    def _update_index(self, changes: Mapping[str, Entry | None]) -> None:
        if not changes:
            return
        run = update_index(self.runner, changes)
        if run.returncode != 0:      # the files and the branch are right: not fatal
            LOG.warning("%s: index not updated after sync (git status may show the "
                        "synced files as changed until the next commit): %s",
                        self.worktree, last_lines(run.stderr))

    def _merge_other(self, local: str, remote: str, unrelated: bool) -> str:
        """git's merge of both trees, for the files outside the store; the
        store's files in it are replaced by our decisions afterwards."""
        args = ["merge-tree", "--write-tree", "-z", "--name-only", "--no-messages"]
        if unrelated:
            args.append("--allow-unrelated-histories")
        run = self.runner.run([*args, local, remote])
        if run.returncode not in (0, 1):
            raise SyncError(f"git merge-tree in {self.worktree}: {last_lines(run.stderr)}")
        fields = [f.decode("utf-8", "surrogateescape") for f in run.stdout.split(b"\0") if f]
        outside = sorted({p for p in fields[1:] if not self.git.is_store(p)})
        if outside:
            raise SyncError(
                f"sync with remote {self.remote!r}: files outside the store changed on both "
                f"sides and git cannot merge them: {', '.join(outside[:10])}; merge with "
                "'git pull', then sync again (local commits are kept)")
        return fields[0]

    def _overlay(self, tree: str, overlays: list[Mapping[str, Entry | None]]) -> list[str]:
        """The trees made by applying each overlay in turn (cumulatively) to
        `tree`, built in a scratch index (the user's index is not touched)."""
        index = os.path.join(self.git_dir, f"gitpersist-sync-{secrets.token_hex(6)}.index")
        env = {"GIT_INDEX_FILE": index}
        try:
            self.runner.output(["read-tree", tree], env=env)
            trees = []
            for overlay in overlays:
                if overlay:
                    self.runner.output(["update-index", "-z", "--index-info"],
                                       input=index_info(overlay), env=env)
                trees.append(self.runner.text(["write-tree"], env=env).strip())
            return trees
        finally:
            for name in (index, index + ".lock"):
                files.unlink_quietly(name)

    def _abspath(self, relpath: str) -> str:
        return os.path.join(self._store.root, *relpath.split("/"))


def finish_interrupted(store: StorePort) -> None:
    """Finish a sync that died between writing the files it received and
    moving the branch (its note is in the git folder).  Called by the store
    at every git open, with the write lock held, before the history's
    recovery: otherwise recovery would commit those files as a local change
    made at the reopening, which would then outrank later remote changes.
    Finishing is merging the commit the sync was applying into the branch
    as it is now (the same rules as a sync: local commits made meanwhile
    keep their times).  A failure is logged; recovery then takes over."""
    syncer = Syncer.__new__(Syncer)     # the git work only: no remote needed
    syncer._bind(store, "")
    try:
        with open(syncer._journal, "rb") as file:
            note = orjson.loads(file.read())
        commit, remote, branch = note["commit"], note["remote"], note["branch"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError, KeyError) as exc:
        LOG.warning("%s: unreadable note of an interrupted sync, ignored: %s", store.root, exc)
        files.unlink_quietly(syncer._journal)
        return
    syncer.remote = str(remote)
    try:
        ref = syncer.git.branch_ref(syncer.remote)
        if not (isinstance(commit, str) and syncer.git.has_commit(commit)):
            raise SyncError(f"{syncer.git_dir}: commit {commit} of the note is missing")
        report = SyncReport(syncer.remote, str(branch), syncer.git.rev(ref), None, str(commit))
        syncer._integrate(ref, commit, report)
        LOG.warning("%s: finished a sync with %r interrupted before it moved the branch "
                    "(%d file(s))", store.root, syncer.remote, len(report.received))
    except GitpersistError as exc:
        LOG.warning("%s: could not finish a sync interrupted before it moved the branch; "
                    "the files it wrote are committed as found at open: %s", store.root, exc)
    finally:
        files.unlink_quietly(syncer._journal)


def _close_at_exit(ref: weakref.ref[Syncer]) -> None:
    syncer = ref()
    if syncer is not None:
        syncer.close()
