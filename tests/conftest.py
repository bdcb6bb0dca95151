import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


# -- cinderlib's global state ----------------------------------------------------
import atexit  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# The first text strategy of a run builds hypothesis's Unicode tables
# (.hypothesis/unicode_data, about two seconds; every fresh clone and every
# new Python's Unicode version needs them): that is not slow input generation.
settings.register_profile("gitpersist", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gitpersist")

try:
    import eventlet
    from cinder.common import config as _  # noqa: F401  (registers state_path)
    from oslo_config import cfg
except ImportError:         # no cinderlib stack: its tests skip
    pass
else:
    # cinder's service and test modules (imported by cinderlib's persistence
    # test base and by cinder's fake driver) call eventlet.monkey_patch() on
    # import, which would turn every thread of this test process green.
    # cinderlib itself never does, so neither may our tests.
    eventlet.monkey_patch = lambda *args, **kwargs: None
    # what cinder imports right after patching
    sys.modules.setdefault("__original_module_threading", threading)

    # cinderlib.setup() starts cinder's file coordination in $state_path,
    # by default the current directory: keep it in a temporary one.
    _cinder_state = tempfile.mkdtemp(prefix="gitpersist-tests-cinder-")
    atexit.register(shutil.rmtree, _cinder_state, ignore_errors=True)
    cfg.CONF.set_override("state_path", _cinder_state)


def pytest_runtest_setup(item):
    """A test marked ``cinderlib`` skips, saying why, without the stack."""
    if item.get_closest_marker("cinderlib") is not None:
        from helpers import CINDERLIB_MISSING
        pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)


@pytest.fixture(autouse=True)
def _logging_enabled():
    """cinderlib.setup() (default disable_logs=True) disables logging for
    the whole process by making Logger.disabled a constant True property;
    put the ordinary attribute back so other tests' logging works."""
    if isinstance(vars(logging.Logger).get("disabled"), property):
        logging.Logger.disabled = False
    yield


@pytest.fixture
def cinderlib_setup(tmp_path):
    """``setup(**kwargs)`` runs cinderlib.setup() for this test; everything
    it makes global (backends, the persistence, cinder's OVO and DB hooks)
    is undone afterwards."""
    cinderlib = pytest.importorskip("cinderlib")
    from cinder import objects as cinder_objects
    from cinder.db import api as db_api
    from cinder.objects import base as cinder_base

    hooks = {(cls, name): vars(cls).get(name)
             for cls in map(lambda n: getattr(cinder_objects, n),
                            cinder_base.CinderObjectRegistry.obj_classes())
             for name in ("save", "get_by_id", "get_all_by_volume_id")}
    impl = db_api.IMPL

    def setup(**kwargs):
        cinderlib.Backend.global_initialization = False
        kwargs.setdefault("file_locks_path", str(tmp_path / "cinder-locks"))
        cinderlib.setup(**kwargs)
        return cinderlib.Backend.persistence

    yield setup
    close = getattr(getattr(cinderlib.Backend, "persistence", None), "close", None)
    if close is not None:
        close()
    cinderlib.Backend.global_initialization = False
    cinderlib.Backend.backends = {}
    cinderlib.Backend._volumes_inflight = {}
    db_api.IMPL = impl
    for (cls, name), method in hooks.items():
        if method is None:
            if name in vars(cls):
                delattr(cls, name)
        else:
            setattr(cls, name, method)


# -- a Python without the cinderlib stack ------------------------------------------

_BLOCKER = """\
import sys


class _Blocked:
    \"\"\"Makes the modules named in argv[1] (and their submodules) absent.\"\"\"

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocked(set(sys.argv[1].split(","))))
"""
CINDERLIB_STACK = ("cinderlib", "cinder", "oslo_config", "oslo_utils",
                   "oslo_versionedobjects", "oslo_db", "oslo_log", "sqlalchemy")


@pytest.fixture
def python_without():
    """``run(code, blocked=CINDERLIB_STACK)``: run `code` in a new
    interpreter where the `blocked` top-level modules cannot be imported
    (as if not installed); returns the finished process."""
    import textwrap

    from helpers import run_python

    def run(code: str, blocked=CINDERLIB_STACK):
        return run_python(_BLOCKER + textwrap.dedent(code), ",".join(blocked), check=False)
    return run
