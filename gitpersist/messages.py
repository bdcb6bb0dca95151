"""Commit messages: what a change says about itself, on one line.

Guarantees: a message never carries a control character taken from a
record (an id, a name, a key): `printable` escapes them, so a record cannot
forge commit trailers or drive the terminal of whoever runs ``git log``;
`clean_message` is git's own cleanup (no NUL, no trailing blanks, one final
newline).  Tested in ``tests/test_messages.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Document = dict[str, Any]
Describe = Callable[[str, str, Document | None, Document | None], str]
"""``describe(type, id, old, new)``: the commit message of one change
(`old` None: created; `new` None: deleted)."""


def describe_change(type: str, id: str, old: Document | None, new: Document | None) -> str:
    """Default commit message: what changed in the record, on one line.

    ``volumes 3f2a... (data): status creating -> available``"""
    doc = new if new is not None else old or {}
    name = doc.get("display_name") or doc.get("name")
    subject = f"{type} {printable(id)}" + (
        f" ({printable(name)})" if isinstance(name, str) and name else "")
    if new is None:
        return f"{subject}: deleted"
    if old is None:
        return f"{subject}: created"
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    if not changed:
        return f"{subject}: rewritten unchanged"
    parts = [f"{printable(key)} {_short(old.get(key))} -> {_short(new.get(key))}"
             if _is_scalar(old.get(key)) and _is_scalar(new.get(key))
             else f"{printable(key)} changed"
             for key in changed[:3]]
    if len(changed) > 3:
        parts.append(f"and {len(changed) - 3} more fields")
    return f"{subject}: {', '.join(parts)}"


def declared_secrets(fields: Mapping[str, Iterable[str]], types: Iterable[str]) -> str:
    """The commit title of a secret-field declaration growing for `types`:
    ``gitpersist: declare secret fields volumes.provider_auth (kept on this host)``."""
    names = [f"{type}.{name}" for type in sorted(types) for name in sorted(fields.get(type, ()))]
    return f"gitpersist: declare secret fields {printable(', '.join(names))} (kept on this host)"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def printable(text: str) -> str:
    """`text` as is if printable, else with each control character (a
    newline, a terminal escape) shown as an escape.  Ids, names and keys come
    from callers and from files: in a commit message a newline would forge
    lines (trailers), and on a terminal an escape sequence would drive it
    (``git log``, ``gitpersist ls``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 40 and text.isprintable() else repr(text[:37]) + "..."


def clean_message(message: str) -> str:
    """Git's commit message cleanup: no NUL, no trailing blanks, one final
    newline."""
    lines = [line.rstrip() for line in str(message).replace("\0", "\\0").split("\n")]
    text = "\n".join(lines).strip("\n")
    return (text or "gitpersist: update") + "\n"
