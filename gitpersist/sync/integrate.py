"""Integrating the remote's commit into the local branch: a plan applied.

`Integrator.integrate`, called with the store's write lock held, makes the
local branch contain the remote's commit:

1. Nothing to do when the remote commit is the local one or behind it.
2. The two sides' changes since the merge base (the empty tree for
   unrelated histories): the remote's are checked first
   (`gitpersist.sync.received.check`: a refusal moves and writes nothing),
   then both go through `gitpersist.sync.merge.plan`, and the format file
   keeps every declaration made here (`received.keep_declarations`).
3. `Trees`: the files outside the store are ours, theirs, or git's merge
   of both (``git merge-tree``; a conflict there fails the sync naming the
   files), and the plan is laid over them in a scratch index (the user's
   index is not touched).  A fast-forward when the local branch has nothing
   new (and no declaration was given back), else a merge commit with both parents, its message listing every
   conflict.
4. Store files about to change whose content on disk is neither the local
   commit's nor the merge's (another process's pending asynchronous
   commit, a hand edit) are committed first, and the integration starts
   again: they are merged, never overwritten.
5. The files outside the store follow by ``git read-tree -m -u``: git's
   rules, which refuse to overwrite a local change (the sync then fails
   naming it and changes nothing).
6. The journal note (`gitpersist.sync.journal`), then the received store
   files through the store (`StorePort.apply_received`: atomic writes every
   watcher and cache sees), then the branch moves by the history's
   compare-and-swap (`Refs.set_if_equals`; a commit made meanwhile, by hand
   or by another process, makes the integration start again), then the
   note goes.
7. The user's index follows for the changed paths only; a received format
   file is adopted (`StorePort.adopt_format`); each conflict is logged.

`Integrator.finish` finishes a sync that died inside step 6: it merges the
noted commit into the branch as it is now, by the same rules (local commits
made meanwhile keep their times).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping, Sequence

from .. import encoding, files
from ..errors import GitpersistError, HistoryError, SyncError
from ..history.index import index_info, update_index
from ..history.runner import last_lines
from ..layout import FORMAT_FILE, Change
from .journal import Journal, Note
from .fieldmerge import FieldMerge
from .ledger import Ledger
from .merge import LOCAL, FormatUnion, LaterChangeWins, Plan, Resolver, plan
from .plumbing import EMPTY_TREE, Diff, Entry, LocalGit
from .port import StorePort
from .received import check, keep_declarations
from .report import Conflict, SyncReport

LOG = logging.getLogger(__package__)

Values = Mapping[str, Entry | None]     # work-tree path -> (mode, blob id), None: absent


class _Restart(Exception):
    """The branch or the files moved under the integration: compute again."""


class Trees:
    """The files outside the store (git's), and the trees of a merge, for a
    sync with `remote` (named in its errors)."""

    def __init__(self, git: LocalGit, remote: str) -> None:
        self.git = git
        self.remote = remote

    def outside(self, local: str, remote: str, base: str | None, ours: Diff,
                theirs: Diff) -> tuple[str, bool]:
        """(the tree of the files outside the store after the merge: ours,
        theirs, or git's merge of both; whether they change here)."""
        ours_other = [p for p in ours if not self.git.is_store(p)]
        theirs_other = [p for p in theirs if not self.git.is_store(p)]
        if not theirs_other:
            return self.git.tree_of(local), False
        if not ours_other or base == local:
            return self.git.tree_of(remote), True
        return self.merge(local, remote, base is None), True

    def merge(self, local: str, remote: str, unrelated: bool) -> str:
        """git's merge of both trees, for the files outside the store; the
        store's files in it are replaced by our decisions afterwards."""
        args = ["merge-tree", "--write-tree", "-z", "--name-only", "--no-messages"]
        if unrelated:
            args.append("--allow-unrelated-histories")
        run = self.git.runner.run([*args, local, remote])
        if run.returncode not in (0, 1):
            raise SyncError(f"git merge-tree in {self.git.worktree}: {last_lines(run.stderr)}")
        fields = [f.decode("utf-8", "surrogateescape") for f in run.stdout.split(b"\0") if f]
        outside = sorted({p for p in fields[1:] if not self.git.is_store(p)})
        if outside:
            raise SyncError(
                f"sync with remote {self.remote!r}: files outside the store changed on both "
                f"sides and git cannot merge them: {', '.join(outside[:10])}; merge with "
                "'git pull', then sync again (local commits are kept)")
        return fields[0]

    def overlay(self, tree: str, overlays: Sequence[Values]) -> list[str]:
        """The trees made by applying each overlay in turn (cumulatively) to
        `tree`, built in a scratch index (the user's index is not touched)."""
        runner = self.git.runner
        index = os.path.join(self.git.git_dir, f"gitpersist-sync-{secrets.token_hex(6)}.index")
        env = {"GIT_INDEX_FILE": index}
        try:
            runner.output(["read-tree", tree], env=env)
            trees = []
            for overlay in overlays:
                if overlay:
                    runner.output(["update-index", "-z", "--index-info"],
                                  input=index_info(overlay), env=env)
                trees.append(runner.text(["write-tree"], env=env).strip())
            return trees
        finally:
            for name in (index, index + ".lock"):
                files.unlink_quietly(name)

    def checkout(self, current: str, target: str) -> None:
        """Update the files outside the store from `current` to `target`, by
        git's rules (refusing to overwrite local changes)."""
        # Stat info first, as git checkout and merge do: a file edited and
        # edited back is not a local change.  (Exits 1 when files differ.)
        self.git.runner.run_retrying_index(["update-index", "-q", "--refresh"])
        run = self.git.runner.run_retrying_index(["read-tree", "-m", "-u", current, target])
        if run.returncode != 0:
            raise SyncError(
                f"sync with {self.remote!r}: the remote changed files outside the store "
                f"that have local changes in {self.git.worktree}; commit or stash them and "
                f"sync again ({last_lines(run.stderr)})")

    def update_index(self, changes: Values) -> None:
        """The user's index entries of `changes` (the files and the branch
        are right already: a failure is only logged)."""
        if not changes:
            return
        run = update_index(self.git.runner, changes)
        if run.returncode != 0:
            LOG.warning("%s: index not updated after sync (git status may show the "
                        "synced files as changed until the next commit): %s",
                        self.git.worktree, last_lines(run.stderr))


class Integrator:
    """Integrates commits of `remote` (its name) into the branch of the
    store's repository (see the module docstring).  `git`: the local
    commands (made from the store's history, `timeout` seconds each, if not
    given); `resolvers`: the merge rule (if not given: `FormatUnion`, then
    `FieldMerge` unless the store's ``merge`` option is "record", then
    `LaterChangeWins`).  Every conflict decided goes to the store's
    `Ledger` too.

    Lock rules: none of its own.  `integrate` runs under the store's write
    lock and the sync lock (the `Syncer`'s), `finish` under the write lock
    at the store's open."""

    def __init__(self, store: StorePort, remote: str, *, git: LocalGit | None = None,
                 timeout: float = 120.0, resolvers: Sequence[Resolver] | None = None) -> None:
        history = store.history
        if history is None:
            raise SyncError(f"store {store.root} has no git history to sync")
        self.store = store
        self.remote = remote
        self.history = history
        self.git = git or LocalGit.of(history, timeout=timeout)
        self.trees = Trees(self.git, remote)
        self.journal = Journal(self.git.git_dir, self.git.prefix)
        if resolvers is None:
            field = [FieldMerge(self.git)] if store.options.merge == "field" else []
            resolvers = [FormatUnion(self.git), *field, LaterChangeWins()]
        self.resolvers: list[Resolver] = list(resolvers)
        self.ledger = Ledger(store.root, fsync=store.options.fsync,
                             dir_mode=store.options.dir_mode)

    def integrate(self, ref: str, remote_head: str | None, report: SyncReport, *,
                  attempts: int) -> str | None:
        """Make the local branch `ref` contain `remote_head`; return its
        commit, and add what was received and decided to `report`.  Tries
        `attempts` times while the branch or the files move under it."""
        for _ in range(attempts):
            self.store.flush()       # this process's queued commits
            try:
                return self._once(ref, remote_head, report)
            except _Restart:
                continue
        raise SyncError(f"sync with remote {self.remote!r}: {ref} in {self.git.git_dir} kept "
                        "moving during the merge; try again")

    def finish(self, note: Note, *, attempts: int) -> None:
        """Finish the interrupted sync of `note` (see `gitpersist.sync.journal`):
        merge its commit into the branch as it is now.  A failure is logged
        (recovery then takes over); the note is removed either way."""
        root = self.store.root
        try:
            ref = self.git.branch_ref(self.remote)
            commit = note.commit
            if not (isinstance(commit, str) and self.git.has_commit(commit)):
                raise SyncError(f"{self.git.git_dir}: commit {commit} of the note is missing")
            report = SyncReport(self.remote, note.branch, self.git.rev(ref), None, commit)
            self.integrate(ref, commit, report, attempts=attempts)
            LOG.warning("%s: finished a sync with %r interrupted before it moved the branch "
                        "(%d file(s))", root, self.remote, len(report.received))
        except GitpersistError as exc:
            LOG.warning("%s: could not finish a sync interrupted before it moved the branch; "
                        "the files it wrote are committed as found at open: %s", root, exc)
        finally:
            self.journal.remove()

    # -- one integration -------------------------------------------------------------

    def _once(self, ref: str, remote: str | None, report: SyncReport) -> str | None:
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
        # before anything is decided, written or moved: the remote is untrusted
        check(theirs, prefix=self.git.prefix, commit=remote, remote=self.remote, blobs=self.git)

        def last_change(side: str, path: str) -> tuple[str, int]:
            return self.git.last_change(base, local if side == LOCAL else remote, path)
        decisions = plan(ours, theirs, prefix=self.git.prefix, last_change=last_change,
                         resolvers=self.resolvers, base=base)
        # declarations only grow: a format file that dropped some gets them back
        kept = keep_declarations(decisions.decided, decisions.local, prefix=self.git.prefix,
                                 blobs=self.git)
        fast_forward = base == local and not kept
        changes = decisions.changes
        other_tree, others_change = self.trees.outside(local, remote, base, ours, theirs)
        overlays = [decisions.local] if others_change else []
        if not fast_forward:
            overlays.append(decisions.decided)
        trees = self.trees.overlay(other_tree, overlays) if overlays else []
        if fast_forward:
            new = remote
            subject = f"fast-forward to {self.remote} {report.branch}"
        else:
            message = self._message(report.branch, changes, decisions.conflicts)
            new = self.git.commit_tree(trees[-1], [local, remote], message)
            subject = message.split("\n", 1)[0]

        self._commit_uncommitted(decisions)     # may raise _Restart
        contents = self.git.blobs(sorted({e[1] for e in changes.values() if e is not None}))
        if others_change:
            self.trees.checkout(self.git.tree_of(local), trees[0])
        self._apply(ref, local, new, subject, decisions, contents, report)
        return new

    def _apply(self, ref: str, local: str, new: str, subject: str, decisions: Plan,
               contents: Mapping[str, bytes], report: SyncReport) -> None:
        """Write the received files and move the branch from `local` to `new`."""
        changes = decisions.changes
        # The crash invariant of a sync: the note naming `new` is on disk
        # before the first received file, and goes only once the branch has
        # moved.  A process dying in between leaves files the branch does not
        # have yet; the next open finishes the merge from the note instead
        # of committing them as its own later change (`finish`).
        self.journal.write(Note(new, self.remote, report.branch), self.store.options)
        received = []
        for path, entry in changes.items():
            relpath = self.git.relpath(path)
            self.store.apply_received(relpath, None if entry is None else contents[entry[1]])
            received.append(relpath)
        try:        # git's compare-and-swap, as every commit of the history
            moved = self.history.refs.set_if_equals(ref, local, new,
                                                    f"gitpersist sync: {subject}")
        except (HistoryError, OSError) as exc:
            raise SyncError(f"moving {ref} in {self.git.git_dir} to {new[:12]} failed: "
                            f"{exc}") from None
        if not moved:
            raise _Restart()
        self.journal.remove()
        self.trees.update_index(changes)
        if self.git.prefix + FORMAT_FILE in changes:
            # The other host's secret fields apply here from now on.
            report.declared = self.store.adopt_format()
            if report.declared:
                LOG.warning("%s: sync with %s: the remote declared secret fields this host "
                            "did not: %s; from now on each host keeps its own values of "
                            "them (they no longer sync)", self.store.root, self.remote,
                            ", ".join(f"{t}.{n}" for t, ns in report.declared.items()
                                      for n in ns))
        try:
            self.ledger.add(decisions.conflicts, remote=self.remote, merge_commit=new)
        except GitpersistError as exc:
            LOG.warning("%s: the conflicts of this sync are in its report and its merge "
                        "commit, not in the conflicts file: %s", self.store.root, exc)
        for conflict in decisions.conflicts:
            LOG.warning("%s: %s changed on both sides (sync with %s); kept the %s version "
                        "(commit %s), the %s one (commit %s) stays in history",
                        self.store.root, conflict.where, self.remote, conflict.winner,
                        conflict.winner_commit[:12],
                        "remote" if conflict.winner == "local" else "local",
                        conflict.loser_commit[:12])
        report.received.extend(received)
        report.conflicts.extend(decisions.conflicts)

    def _message(self, branch: str, changes: Values, conflicts: Sequence[Conflict]) -> str:
        lines = [f"sync {self.remote} {branch}: {len(changes)} store file(s) "
                 f"from the remote, {len(conflicts)} conflict(s)"]
        if conflicts:
            lines += ["", "Changed on both sides; the later change wins (gitpersist.sync; "
                          "`gitpersist conflicts` lists them, `gitpersist resolve` settles "
                          "them):"]
            for c in conflicts:
                lines.append(f"- {c.where}: kept {c.winner} {c.winner_commit[:12]} over "
                             f"{'remote' if c.winner == 'local' else 'local'} "
                             f"{c.loser_commit[:12]}")
        return "\n".join(lines) + "\n"

    def _commit_uncommitted(self, decisions: Plan) -> None:
        """Commit the files about to change whose content on disk is neither
        the local commit's nor the merge's (a change not committed yet), then
        restart: the merge must see them."""
        found = []
        for path, entry in decisions.changes.items():
            relpath = self.git.relpath(path)
            abspath = os.path.join(self.store.root, *relpath.split("/"))
            try:
                data = files.read_below(self.store.root, relpath)
            except OSError as exc:
                raise SyncError(f"sync with {self.remote!r}: cannot read "
                                f"{abspath}: {exc.strerror or exc}") from None
            disk = None if data is None else encoding.revision_of(data[0])
            wanted = {None if e is None else e[1] for e in (entry, decisions.local[path])}
            if disk not in wanted:
                found.append(Change(relpath, None if data is None else data[0], disk))
        if not found:
            return
        self.history.record(found, f"Commit {len(found)} store file(s) changed before a "
                                   "sync\n\n" + "".join(f"- {c.relpath}\n" for c in found))
        self.history.flush()
        raise _Restart()
