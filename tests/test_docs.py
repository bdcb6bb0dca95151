"""The API reference (docs/, Sphinx autodoc) builds with warnings as
errors and documents every public name from its docstring."""

import pathlib
import posixpath
import subprocess
import sys

import pytest

import gitpersist
from gitpersist import errors

ROOT = pathlib.Path(__file__).resolve().parents[1]


def public_methods(cls):
    return [f"{cls.__module__}.{cls.__qualname__}.{name}" for name, value in vars(cls).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))]


@pytest.mark.slow
@pytest.mark.cinderlib          # FilePersistence is documented from its module
def test_the_api_reference_builds_without_a_warning_and_names_everything(tmp_path):
    pytest.importorskip("sphinx", reason="the API reference needs the docs extra")
    from sphinx.util.inventory import InventoryFile

    from gitpersist.plugin import FilePersistence
    from gitpersist.transfer import TransferError

    out = tmp_path / "html"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                           "-b", "html", str(ROOT / "docs"), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    with open(out / "objects.inv", "rb") as file:
        inventory = InventoryFile.load(file, "", posixpath.join)
    documented = {name for objects in inventory.values() for name in objects}

    wanted = {f"gitpersist.{name}" for name in gitpersist.__all__
              if name not in ("__version__", "ABSENT")}
    wanted |= {"gitpersist.store.ABSENT", "gitpersist.options.Options",
               "gitpersist.history.Version", "gitpersist.sync.SyncReport",
               "gitpersist.sync.Conflict", "gitpersist.transfer.TransferError",
               "gitpersist.plugin.FilePersistence"}
    wanted |= {f"gitpersist.{cls.__name__}" for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.GitpersistError)}
    wanted |= {name.replace("gitpersist.store.", "gitpersist.", 1)
               for name in public_methods(gitpersist.Store)}
    wanted |= {name.replace("gitpersist.cinder.plugin.", "gitpersist.plugin.", 1)
               for name in public_methods(FilePersistence)}
    assert TransferError.__doc__
    assert sorted(wanted - documented) == []
    assert (out / "index.html").exists()
