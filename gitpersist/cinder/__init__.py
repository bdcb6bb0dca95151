"""gitpersist for cinderlib: the ``storage="file"`` persistence plugin and
what goes with it, as an application of the generic store.

* `schema`: cinderlib's record types, indexes, secret fields, reference
  rules (for `gitpersist.fsck`) and commit messages.  Plain data: importing
  it loads neither cinderlib nor cinder nor oslo.
* `records`: cinderlib objects (OVOs) to and from records.
* `plugin`: `FilePersistence`, the plugin, a thin translator over a `Store`.
* `migrate`: cinderlib dumps and cinderlib's db-plugin databases into a
  store through the plugin (cinderlib and SQLAlchemy load when called).

`records` and `plugin` need cinderlib (``pip install gitpersist[cinderlib]``);
this package itself imports nothing.
"""

from __future__ import annotations

INSTALL = "install gitpersist[cinderlib] (with its constraints file)"


def missing_cinderlib(exc: ImportError) -> ImportError:
    """The error to raise when the cinderlib stack cannot be imported: of
    `exc`'s class (ModuleNotFoundError when a module is absent), saying what
    to install."""
    return type(exc)(f"gitpersist's cinderlib plugin needs cinderlib: {INSTALL} ({exc})",
                     name=exc.name, path=exc.path)
