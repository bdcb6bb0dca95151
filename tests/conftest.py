import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


# -- cinderlib's global state ----------------------------------------------------
# cinder's service and test modules (imported by cinderlib's persistence test
# base and by cinder's fake driver) call eventlet.monkey_patch() on import,
# which would turn every thread of this test process green.  cinderlib itself
# never does, so neither may our tests.
try:
    import eventlet
except ImportError:
    pass
else:
    import threading

    eventlet.monkey_patch = lambda *args, **kwargs: None
    # what cinder imports right after patching
    sys.modules.setdefault("__original_module_threading", threading)

import logging  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _logging_enabled():
    """cinderlib.setup() (default disable_logs=True) disables logging for
    the whole process by making Logger.disabled a constant True property;
    put the ordinary attribute back so other tests' logging works."""
    if isinstance(vars(logging.Logger).get("disabled"), property):
        logging.Logger.disabled = False
    yield
