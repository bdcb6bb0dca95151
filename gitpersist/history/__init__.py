"""The git layer: a store's history in the git repository enclosing it.

One concept per module, imports only downward (none of the store, the sync
or the applications):

    repo      the repository enclosing the store: paths, checks, author
    runner    running git commands (timeouts, index.lock retry, status)
    objects   object ids, trees, reading objects, one pack per commit
    refs      reading refs, moving one by compare-and-swap, reflogs
    commit    building a commit of store paths on top of HEAD
    index     index-info lines and the history's index updates
    worker    the background thread: async commits, repack and gc
    group     group commit: sync-mode writers sharing a commit
    log       reading history: versions, content at a revision, diffs
    history   `History`, composed of the above (guarantees, lock order)
"""

from .history import History
from .log import Version
from .repo import DEFAULT_AUTHOR

__all__ = ["DEFAULT_AUTHOR", "History", "Version"]
