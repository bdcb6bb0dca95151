"""The store's options: one table of defaults and checks, one set of rules.

`Store(...)` keyword arguments, the cinderlib plugin's ``persistence_config``
and the command line all go through `parse`, so an option means the same and
is refused the same wherever it is given.  Each check takes the option's
label as the caller names it (``"fsync"`` for ``Store(fsync=...)``,
``"persistence_config 'fsync'"`` for the plugin) and the value; it returns
the value, normalised, or raises `ConfigError` naming the label.

Rules decided here (tests: ``tests/test_options.py``):

* Every option is checked whatever the others say: ``commit_mode="bogus"``
  or a malformed ``author`` is refused with ``git=False`` too.
* ``remote`` needs ``git``; ``sync_every``, ``sync_on_open`` and
  ``sync_after_commit`` need ``remote``, and a writable store (not
  ``read_only``: a sync writes).
* ``object_cache`` (the cinderlib plugin's built-object cache, a count of
  records; 0: none) is checked here like the others, and only the plugin
  reads it.
* An author is ``Name <email>``: a non-empty name, an email in angle
  brackets (which may be empty), no other ``<``, ``>`` or newline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

Check = Callable[[str, Any], Any]
Label = Callable[[str], str]

WATCH_MODES = ("native", "polling", "off")
COMMIT_MODES = ("sync", "async")
MERGE_RULES = ("field", "record")
_AUTHOR_RE = re.compile(r"\s*([^<>\n]*?)\s*<([^<>\n]*)>\s*")


# -- checks ----------------------------------------------------------------------

def boolean(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{label}: {value!r} is not true or false")
    return value


def seconds(minimum: float, strict: bool) -> Check:
    """Seconds above `minimum` (`strict`) or at least `minimum`."""
    def check(label: str, value: Any) -> float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not (value > minimum if strict else value >= minimum)
                or value != value or value == float("inf")):
            bound = "more than" if strict else "at least"
            raise ConfigError(f"{label}: {value!r} is not a number of seconds "
                              f"{bound} {minimum:g}")
        return float(value)
    return check


def count(label: str, value: Any) -> int:
    """A number of things: an int, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{label}: {value!r} is not a count (an int, 0 or more)")
    return value


def optional(check: Check) -> Check:
    """`check`, or None."""
    def checked(label: str, value: Any) -> Any:
        return None if value is None else check(label, value)
    return checked


def choice(choices: tuple[str, ...]) -> Check:
    def check(label: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{label}: {value!r} is not one of "
                              f"{', '.join(map(repr, choices))}")
        return str(value)
    return check


def mode(label: str, value: Any) -> int:
    """A permission mode: an int such as 0o600 or an octal string such as
    "0600" (what a config file holds)."""
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value):
        value = int(value.replace("o", ""), 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise ConfigError(f"{label}: {value!r} is not a permission mode (an int such "
                          "as 0o600, or an octal string such as '0600')")
    return value


def parse_author(label: str, value: Any) -> tuple[str, str]:
    """(name, email) of ``"Name <email>"``."""
    match = _AUTHOR_RE.fullmatch(value) if isinstance(value, str) else None
    if not match or not match.group(1):
        raise ConfigError(f"{label}: {value!r} is not of the form 'Name <email>'")
    return match.group(1), match.group(2)


def author(label: str, value: Any) -> str | None:
    if value is None:
        return None
    name, email = parse_author(label, value)
    return f"{name} <{email}>"


def remote(label: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value
                                  and not value.startswith("-")
                                  and not any(c.isspace() or c == "\0" for c in value)):
        raise ConfigError(f"{label}: {value!r} is not the name of a git remote "
                          "(such as 'origin')")
    return value


# -- the table ---------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """Every scalar option of a store, checked (see `parse`).  The defaults
    here are the defaults everywhere."""
    git: bool = False
    fsync: bool = True
    watch: str = "native"
    poll_interval: float = 1.0
    lock_timeout: float = 30.0
    file_mode: int = 0o600
    dir_mode: int = 0o700
    author: str | None = None
    commit_mode: str = "sync"
    commit_delay: float = 0.2
    remote: str | None = None
    sync_every: float | None = None
    sync_on_open: bool = False
    sync_after_commit: bool = False
    merge: str = "field"
    read_only: bool = False
    # Read by the cinderlib plugin (`gitpersist.cinder.objects`), which
    # builds objects from records; a Store has no built objects.
    object_cache: int = 10_000

    @property
    def syncing(self) -> bool:
        return self.remote is not None


CHECKS: dict[str, Check] = {
    "git": boolean,
    "fsync": boolean,
    "watch": choice(WATCH_MODES),
    "poll_interval": seconds(0, strict=True),
    "lock_timeout": seconds(0, strict=False),
    "file_mode": mode,
    "dir_mode": mode,
    "author": author,
    "commit_mode": choice(COMMIT_MODES),
    "commit_delay": seconds(0, strict=False),
    "remote": remote,
    "sync_every": optional(seconds(0, strict=True)),
    "sync_on_open": boolean,
    "sync_after_commit": boolean,
    "merge": choice(MERGE_RULES),
    "read_only": boolean,
    "object_cache": count,
}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Options)}
assert CHECKS.keys() == DEFAULTS.keys()


def parse(values: Mapping[str, Any], label: Label = str) -> Options:
    """`values` (option name -> value; missing ones take their default),
    each checked, then the rules between options; `ConfigError` names the
    option at fault by ``label(name)``."""
    unknown = sorted(set(values) - set(CHECKS), key=str)
    if unknown:
        raise ConfigError(f"{label(unknown[0])}: unknown option; known: {', '.join(CHECKS)}")
    checked = {name: check(label(name), values.get(name, DEFAULTS[name]))
               for name, check in CHECKS.items()}
    if checked["remote"] is not None and not checked["git"]:
        raise ConfigError(f"{label('remote')}: {checked['remote']!r} needs {label('git')} "
                          "true (syncing goes through git)")
    if checked["remote"] is None:
        for name in ("sync_every", "sync_on_open", "sync_after_commit"):
            if checked[name] not in (None, False):
                raise ConfigError(f"{label(name)}: {values[name]!r} needs {label('remote')} "
                                  "(a git remote to sync with)")
    if checked["read_only"]:
        for name in ("sync_every", "sync_on_open", "sync_after_commit"):
            if checked[name] not in (None, False):
                raise ConfigError(f"{label(name)}: {values[name]!r} needs {label('read_only')} "
                                  "false (a sync writes to the store)")
    return Options(**checked)
