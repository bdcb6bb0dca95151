"""The filters of `Store.find`: equal fields by keyword, and with a mapping
comparison operators and dotted paths into nested objects.

``store.find("volumes", status="available")`` is equality, as it always
was; ``store.find("volumes", {"size >=": 10, "meta.owner": "ops",
"status in": ["available", "in-use"]})`` takes a mapping, whose keys are a
field name, optionally followed by a space and an operator.  Both forms
combine; every filter must hold.  `type` is positional-only in `find`, so a
field called ``type`` (or ``where``) is a keyword filter like any other.

Guarantees (tests: ``tests/test_query.py``, hypothesis against a plain
Python filter):

* A name ``a.b`` reaches into nested objects, unless the record has a
  field literally called ``a.b`` (the CLI's ``--where`` does the same).
* Operators: ``=`` (the default), ``!=``, ``<``, ``<=``, ``>``, ``>=``,
  ``in`` (the operand a list).  ``=`` compares with ``==``, a missing field
  being None (as before); every other operator matches nothing on a
  missing field, as TinyDB's queries do.  An order comparison of values of
  different kinds (a number and a string) matches nothing: never a
  ``TypeError``.  Numbers compare with numbers (not booleans), strings with
  strings.
* ``=`` and ``in`` on a declared index are answered by the index (`Cache`),
  without a scan; other operators read the field.
* A key with an unknown operator is just a field name; an ``in`` whose
  operand is not a list or tuple raises `ConfigError` naming the filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in")
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    """One filter: the field `name` (dotted: nested), `op`, the `value`."""
    name: str
    op: str
    value: Any

    def matches(self, document: Mapping[str, Any]) -> bool:
        found = field(document, self.name)
        if self.op == "=":
            return bool((None if found is _MISSING else found) == self.value)
        if found is _MISSING:
            return False
        if self.op == "!=":
            return bool(found != self.value)
        if self.op == "in":
            return any(found == option for option in self.value)
        if not _comparable(found, self.value):
            return False
        if self.op == "<":
            return bool(found < self.value)
        if self.op == "<=":
            return bool(found <= self.value)
        if self.op == ">":
            return bool(found > self.value)
        return bool(found >= self.value)


def conditions(where: Mapping[str, Any] | None, filters: Mapping[str, Any]) -> list[Condition]:
    """The conditions of `find`'s mapping `where` and keyword `filters`."""
    if where is not None and not isinstance(where, Mapping):
        raise ConfigError(f"find: the filters {where!r} must be a mapping of "
                          "'field [operator]' -> value")
    found = [Condition(*split_key(key), value) for key, value in (where or {}).items()]
    found += [Condition(name, "=", value) for name, value in filters.items()]
    for condition in found:
        if condition.op == "in" and not isinstance(condition.value, list | tuple):
            raise ConfigError(f"find: {condition.name!r} in {condition.value!r}: "
                              "the operand of 'in' must be a list")
    return found


def split_key(key: str) -> tuple[str, str]:
    """``"size >="`` -> ("size", ">="); a key without a known operator
    after its last space is all field name (``=``)."""
    if not isinstance(key, str):
        raise ConfigError(f"find: filter key {key!r} is not a field name")
    name, space, op = key.rpartition(" ")
    if space and op in OPERATORS and name.strip():
        return name.strip(), op
    return key, "="


def field(document: Mapping[str, Any], name: str) -> Any:
    """The value at `name` in `document` (``a.b``: nested, unless `document`
    has a field literally called ``a.b``), or `_MISSING`."""
    if name in document or "." not in name:
        return document.get(name, _MISSING)
    value: Any = document
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def value_of(document: Mapping[str, Any], name: str) -> Any:
    """`field`, with None for a missing one (what a table shows)."""
    found = field(document, name)
    return None if found is _MISSING else found


def _comparable(a: Any, b: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)
    return (number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))
