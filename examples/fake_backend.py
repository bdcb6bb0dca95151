"""A real cinderlib Backend on cinder's fake driver (no storage hardware),
for the demo and the end-to-end tests.

cinder ships `FakeLoggingVolumeDriver` in its test package, whose
``__init__`` calls ``eventlet.monkey_patch()``: that would turn every thread
of the process (the store's watcher among them) into a green thread and
cost seconds.  cinderlib itself never patches, so `fake_backend` imports the
driver with the patching turned off.
"""

from __future__ import annotations

import sys
import threading

import cinderlib

DRIVER = "cinder.tests.fake_driver.FakeLoggingVolumeDriver"


def fake_backend(name: str = "lvm", **driver_config) -> cinderlib.Backend:
    """A Backend named `name` on the fake driver (call cinderlib.setup first)."""
    import eventlet

    eventlet.monkey_patch = lambda *args, **kwargs: None
    # what cinder's test package imports right after patching
    sys.modules.setdefault("__original_module_threading", threading)
    return cinderlib.Backend(volume_backend_name=name, volume_driver=DRIVER,
                             **driver_config)
