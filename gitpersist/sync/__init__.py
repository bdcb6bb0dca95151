"""Sync a store with a git remote: pull the other hosts' changes, push ours.

    Store(path, git=True, remote="origin", sync_every=30)

`remote` names a git remote of the repository holding the store (``git
remote add origin URL``).  A store syncs when `Store.sync` is called, and
automatically if asked: ``sync_on_open=True`` (once, before the constructor
returns; a failure is logged and the store opens anyway),
``sync_after_commit=True`` (in a background thread soon after each commit,
and once more in `close` if commits are still unsent) and/or
``sync_every=N`` (every N seconds, in that thread).  Default: only explicit
syncs.  A failed automatic sync is logged as a warning and retried (after
`Syncer.retry_delay` seconds, or at the next period).

What a sync does, in order (each step is documented in its module):

1. Commits whatever is pending locally (`Store.flush`).
2. Asks the remote for its branch (the current branch's upstream on that
   remote, else the branch of the same name) and fetches its commit if it
   is new here (`remote`).
3. Checks what the remote's commit changes below the store's path
   (`received`: only record files and a valid format file; anything else
   refuses the sync naming the path and the commit, before anything
   moves), then integrates it, under the store's write lock: fast-forward
   when the local branch has nothing new (and the remote dropped no secret
   declaration), else a merge commit whose parents are the local
   and the remote commit (`integrate`, by the rules of `merge`).  Record
   files that change are written atomically into the work tree (like any
   other write; every process's watcher and this process's cache see them)
   and the index follows, for those paths only.  Files outside the store
   follow git's own rules (``git read-tree -m -u``, ``git merge-tree``): a
   local change there that the remote also changed, or a conflict git
   cannot merge, fails the sync naming the files and changes nothing.
   Nothing else of the work tree or the index is touched; the user's
   unstaged work stays as it is.
4. Pushes the result (``git push``, never forced).  A push rejected because
   the remote moved meanwhile starts again at step 2, up to `Syncer.attempts`
   times.  Pushing pushes the branch: commits made there by hand go too.

Rules:

* **Different records** changed on two hosts merge cleanly: each host ends
  with both changes.  This includes the first sync of hosts that each began
  writing from the same *empty* remote (unrelated histories: the merge base
  is the empty tree; the store's format files are identical on both).
* **The same record** changed on both sides (since the merge base) to
  different contents merges field by field (``merge="field"``, the
  default; `fieldmerge`): a field changed on one side takes that side's
  value, objects (cinderlib's ``metadata``, ``admin_metadata``,
  ``volume_type.extra_specs``, any dict) merge key by key, so two hosts that
  changed different fields both keep their change and there is no
  conflict.  A field both sides changed to different values (a scalar, a
  list), and an edit against a deletion (the whole record), is a
  *conflict*, decided by the later change: "later" is the committer time of
  the newest commit on each side that changed the record; equal times go to
  the larger blob id, a deletion counting as the smallest
  (`merge.LaterChangeWins`, which ``merge="record"`` applies to the whole
  record instead).  So a deletion and an edit are ordered by time like two
  edits, and on a tie the edit wins.  The rule is symmetric: both hosts
  reach the same bytes whichever one merges.  It trusts the hosts' clocks:
  with skewed clocks the host whose clock is ahead wins.
* **The loser is kept in history**: the merge commit has both sides as
  parents (``git log -p --all -- <file>`` shows both versions; `Store.get_at`
  reads either), its message lists every conflict (the file and the field),
  each conflict is logged as a warning, `SyncReport.conflicts` reports it
  (`Conflict`: record, field path, the base, local and remote values,
  winning and losing revisions and commits), and the store's local state
  keeps it until someone settles it (`ledger`: ``gitpersist conflicts``
  lists them, ``gitpersist resolve TYPE ID --take ours|theirs|base`` or
  ``--file F`` writes the version chosen as one commit).
* **Nothing local is lost.**  A rejected push, an unreachable remote, a
  timeout or a crash leaves the local commits as they are: a failed sync
  raises `SyncError` naming the remote (and its URL) and the next sync
  retries.  Record files changed on disk but not committed yet (another
  process's pending asynchronous commit, a hand edit) are committed before
  they are merged, never overwritten.  A sync that dies after writing the
  files it received and before moving the branch is finished by the
  store's next open (with or without a remote), before its crash recovery,
  so those files do not come back as a local change of the reopening's
  time (`journal`).
* **The remote is untrusted** (`received`): secrets, lock files, symlinks
  at any depth, gitlinks, executable modes, ``..`` and unknown names below
  the store's path, a ``.gitignore`` other than the store's, a format file
  that does not parse or is newer: the sync raises `SyncError` naming the
  path and the commit, moves no ref and writes no file.
* **Secret fields stay secret across hosts.**  The format file, where a
  store declares its secret fields, is never "won" by one side: when both
  hosts changed it, the merge declares every field either declared, and
  a remote format file that dropped a field declared here (or is deleted)
  is replaced in the merge by one declaring it (`received`).  A
  host that receives a declaration adopts it at once (`StorePort.adopt_format`):
  later writes keep those fields in side files, and the records already
  there that carry them are rewritten without them.  (A value a host wrote
  before it ever declared or received the declaration is in its history;
  open every host with the same `secret_fields`, as the plugin does.)
* **One sync at a time** per repository, across threads and processes
  (``.git/gitpersist-sync.lock``; `syncer`).  Network commands hold no
  store lock; the integration holds the write lock for a few local git
  commands.
* **No leaked processes**: every git command is waited for; a network
  command running longer than `Syncer.network_timeout` seconds is stopped
  (SIGTERM: git removes its locks) and the sync fails.  `close` stops the
  background thread after its current sync (one started before eventlet
  patched threading syncs no more and is left to the process's end).
* **Credentials** are git's: whatever credential helper, ssh agent or key
  the repository's configuration uses.  gitpersist stores none, and git is
  run with ``GIT_TERMINAL_PROMPT=0`` so it never waits for a password.
* The remote must accept pushes to the branch: a bare repository, or a
  server.  A repository with that branch checked out refuses them.

With a background policy, call neither `Store.sync` nor `Store.close`
inside `Store.batch`: the batch holds the write lock that a background sync
in progress may be waiting for, and that sync holds the sync lock.

Costs measured on the development machine (2 cores, ext4, git 2.39, a
bare remote on the same disk, fsync off): a sync with nothing new, ~35 ms
at 1k to 100k records (one ``git ls-remote`` and a few local commands);
receiving one changed record, 170 ms at 1k records and 390 ms at 100k
(rewriting git's index grows with it); merging 100 local and 100 remote
changes with one conflict, 0.47 s at 1k, 0.67 s at 10k, 1.7 s at 100k.  A
first sync that brings N records writes N files, ~0.35 ms each.

The package, one concept per module, top to bottom (a module imports only
those below it, and none imports the store):

============  ==========================================================
`syncer`      `Syncer`: policies, the thread, the sync lock, the rounds
`remote`      `Remote`: URL, upstream, ``ls-remote``, fetch, push, timeout
`integrate`   `Integrator`: applying a plan (trees, files, branch, index)
`received`    what a remote may send: the store's own files, checked
`fieldmerge`  the field rule: `FieldMerge`, a three-way merge per record
`journal`     the note of a sync under way (the crash invariant)
`ledger`      the conflicts decided, kept until settled (local state)
`merge`       the merge rule: `plan`, `Resolver`s, the later change
`plumbing`    `LocalGit`: the local git commands of a sync
`port`        `StorePort`: what a sync needs of the store
`report`      `SyncReport`, `Conflict`
============  ==========================================================
"""

from ..errors import SyncError
from .port import StorePort
from .report import Conflict, SyncReport
from .syncer import Syncer, finish_interrupted

__all__ = ["Conflict", "StorePort", "SyncError", "SyncReport", "Syncer", "finish_interrupted"]
