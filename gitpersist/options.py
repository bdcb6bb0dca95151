"""Checking option values, shared by `Store` and the cinderlib plugin.

Each check takes the option's label as the caller names it (``"fsync"`` for
``Store(fsync=...)``, ``"persistence_config 'fsync'"`` for the plugin) and
the value; it returns the value, normalised, or raises `ConfigError`
naming the label.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

Check = Callable[[str, Any], Any]


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


def choice(choices: tuple[str, ...]) -> Check:
    def check(label: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{label}: {value!r} is not one of "
                              f"{', '.join(map(repr, choices))}")
        return value
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
