"""cinderlib's ``storage="file"`` persistence plugin: the entry point
(``gitpersist.plugin:FilePersistence``) and the names it always offered.

The plugin lives in `gitpersist.cinder.plugin` (its configuration and
guarantees are documented there); this module re-exports it.  Importing it
without cinderlib installed raises an ImportError saying to install
``gitpersist[cinderlib]``.
"""

from .cinder.plugin import (CONNECTIONS, INDEXES, KEY_VALUES, OPTIONS, SECRET_FIELDS,
                            SNAPSHOTS, TYPES, VOLUMES, FilePersistence, backend_of_host,
                            ovo_from_record, ovo_record, parse_config, volume_from_record,
                            volume_record)

__all__ = [
    "CONNECTIONS", "FilePersistence", "INDEXES", "KEY_VALUES", "OPTIONS", "SECRET_FIELDS",
    "SNAPSHOTS", "TYPES", "VOLUMES", "backend_of_host", "ovo_from_record", "ovo_record",
    "parse_config", "volume_from_record", "volume_record",
]
