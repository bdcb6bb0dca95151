import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


# -- cinderlib's global state ----------------------------------------------------
import atexit  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import subprocess  # noqa: E402
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


# -- git ---------------------------------------------------------------------------

@pytest.fixture
def no_git_identity(tmp_path_factory, monkeypatch):
    """No global or system git config, no identity in the environment (as
    on a fresh CI machine); the processes a test starts inherit it."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def git_repo(tmp_path, no_git_identity):
    """A fresh repository (work tree) with one commit (of README) on branch
    main, made by git itself as "Git User <git@example.com>"."""
    import subprocess
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README").write_text("a repository\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "Git User", "GIT_AUTHOR_EMAIL": "git@example.com",
           "GIT_COMMITTER_NAME": "Git User", "GIT_COMMITTER_EMAIL": "git@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "README"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)
    return repo


@pytest.fixture
def git_tunables():
    """What the git layer's parts read of their owner (a History), with
    short waits: a stand-in owner for testing a part alone."""
    import types
    return types.SimpleNamespace(
        fsync=True, git_lock_timeout=0.3, stale_lock_age=0.2, tree_cache_size=2048,
        index_delay=0.0, commit_delay=0.0, retry_delay=0.05, repack_every=16, gc_every=1024,
        child_wait=5.0)


# -- a file system with coarse timestamps -----------------------------------------

@pytest.fixture
def coarse_fs(tmp_path):
    """An ext4 file system with 1-second timestamps (128-byte inodes), loop
    mounted; skips where this machine does not allow it."""
    if shutil.which("mkfs.ext4") is None or os.geteuid() != 0:
        pytest.skip("needs root and mkfs.ext4 to loop-mount a file system")
    image, point = tmp_path / "coarse.img", tmp_path / "coarse"
    with open(image, "wb") as file:
        file.truncate(32 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)],
                          capture_output=True, text=True)
    point.mkdir()
    mounted = made.returncode == 0 and subprocess.run(
        ["mount", "-o", "loop", str(image), str(point)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip(f"cannot loop-mount a file system here: {made.stderr.strip()}")
    try:
        (point / "probe").write_text("x")
        if os.stat(point / "probe").st_mtime_ns % 1_000_000_000:
            pytest.skip("the loop-mounted file system has fine timestamps")
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


# -- sync ----------------------------------------------------------------------------

@pytest.fixture
def bare_remote(tmp_path, no_git_identity):
    """An empty bare repository (HEAD: main): a remote to sync with."""
    import subprocess
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True,
                   capture_output=True)
    return path


@pytest.fixture
def clone_of(bare_remote):
    """``clone_of(name)``: a host, a clone of `bare_remote` (which may be
    empty) next to it, whose remote "origin" is it."""
    import subprocess

    def clone(name: str):
        subprocess.run(["git", "clone", "-q", str(bare_remote), name], check=True,
                       capture_output=True, cwd=bare_remote.parent)
        return bare_remote.parent / name
    return clone
