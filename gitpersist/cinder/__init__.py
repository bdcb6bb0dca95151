"""gitpersist for cinderlib: the ``storage="file"`` persistence plugin and
what goes with it, as an application of the generic store.

* `schema`: cinderlib's record types, indexes, secret fields, reference
  rules (for `gitpersist.fsck`) and commit messages.  Plain data: importing
  it loads neither cinderlib nor cinder nor oslo.
* `records`: cinderlib objects (OVOs) to and from records.
* `objects`: built objects kept per record version, cloned for each read.
* `reads`: the plugin's reads, over `objects`.
* `plugin`: `FilePersistence`, the plugin, a thin translator over a `Store`.
* `migrate`: cinderlib dumps and cinderlib's db-plugin databases into a
  store through the plugin (cinderlib and SQLAlchemy load when called).

`records` and `plugin` need cinderlib (``pip install gitpersist[cinderlib]``,
on Python 3.11: cinderlib 5.2.0 and cinder 23 run on Python up to 3.11, and
on later ones the extra installs nothing); this package itself imports
nothing.
"""

from __future__ import annotations

import sys

NEWEST_PYTHON = (3, 11)
"""The newest Python that cinderlib 5.2.0 and cinder 23 run on."""


def install_hint(python: tuple[int, int] = (sys.version_info[0], sys.version_info[1])) -> str:
    """How to get the cinderlib stack, said for Python `python`."""
    if python > NEWEST_PYTHON:
        return (f"install gitpersist[cinderlib] on Python 3.11 (cinderlib 5.2.0 and "
                f"cinder 23 run on Python up to 3.11, not {python[0]}.{python[1]}, "
                "where the extra installs nothing)")
    return "install gitpersist[cinderlib]"


INSTALL = install_hint()


def missing_cinderlib(exc: ImportError) -> ImportError:
    """The error to raise when the cinderlib stack cannot be imported: of
    `exc`'s class (ModuleNotFoundError when a module is absent), saying what
    to install."""
    return type(exc)(f"gitpersist's cinderlib plugin needs cinderlib: {INSTALL} ({exc})",
                     name=exc.name, path=exc.path)
