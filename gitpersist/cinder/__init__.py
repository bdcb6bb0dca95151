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
