"""gitpersist: metadata as one JSON file per record, a file lock on every
write, optional git history, and a cache kept coherent by a file watcher.

    >>> from gitpersist import Store
    >>> with Store("/tmp/meta") as store:
    ...     store.put("volumes", "vol-1", {"size": 1})
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import (ChangesExpired, ConfigError, ConflictError, CorruptRecord, FormatError,
                     GitpersistError, HistoryError, InvalidDocument, InvalidId,
                     LockTimeout, ReadOnlyStore, StoreError, SyncError, UnreadableFolder)
from .store import ABSENT, Change, Store, describe_change

try:
    __version__ = version("gitpersist")
except PackageNotFoundError:     # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ABSENT", "Change", "ChangesExpired", "ConfigError", "ConflictError", "CorruptRecord",
    "FormatError", "GitpersistError", "HistoryError", "InvalidDocument",
    "InvalidId", "LockTimeout", "ReadOnlyStore", "Store", "StoreError", "SyncError",
    "UnreadableFolder", "describe_change",
    "__version__",
]
