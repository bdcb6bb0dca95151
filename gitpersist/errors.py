"""Exceptions raised by gitpersist.  Every message names the file, type,
id, key or option at fault."""

from __future__ import annotations


class GitpersistError(Exception):
    """Base class of every error gitpersist raises on purpose."""


class StoreError(GitpersistError):
    """The store folder cannot be used (missing, not a folder, not writable)."""


class FormatError(StoreError):
    """The store was written by a newer (or unknown) on-disk format."""


class InvalidId(GitpersistError, ValueError):
    """A type name or record id that cannot be stored."""


class InvalidDocument(GitpersistError, ValueError):
    """A document holding a value that does not round-trip through JSON."""


class CorruptRecord(GitpersistError):
    """A record file that does not parse or does not match its path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"corrupt record {path}: {reason}")
        self.path = path
        self.reason = reason


class UnreadableFolder(CorruptRecord):
    """A type or shard folder the store cannot list (its permissions): its
    records are left out of listings, which `Store.corrupt` says."""

    def __init__(self, path: str, reason: str) -> None:
        GitpersistError.__init__(self, f"unreadable folder {path}: {reason} "
                                 "(its records are left out)")
        self.path = path
        self.reason = reason


class ConflictError(GitpersistError):
    """A write based on a stale revision of a record (optimistic concurrency)."""

    def __init__(self, type: str, id: str, expected: str | None, actual: str | None) -> None:
        super().__init__(
            f"{type} {id!r} changed underneath you: expected revision "
            f"{expected or 'absent'}, found {actual or 'absent'}")
        self.type, self.id, self.expected, self.actual = type, id, expected, actual


class LockTimeout(StoreError):
    """The store's write lock was not obtained within `lock_timeout` seconds."""


class ReadOnlyStore(StoreError):
    """A write to a store opened read-only (``read_only=True``, or picked
    because its folder is not writable)."""


class HistoryError(GitpersistError):
    """A git operation of the store's history failed."""


class SyncError(HistoryError):
    """A sync with a git remote failed; local commits are untouched."""


class ConfigError(GitpersistError, ValueError):
    """An unknown option or a bad option value."""


class ChangesExpired(StoreError):
    """A change-feed token this store's change log no longer covers (the
    log was rotated or replaced), or never handed out: list again, then
    follow from a new token (Kubernetes' 410 Gone)."""
