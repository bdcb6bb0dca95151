"""The `gitpersist` command as an ops team uses it (issue 16): commands cut
short leave honest history, long work shows progress, git's habits."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import test_cli
from gitpersist import Store, paths
from helpers import git

run = test_cli.run      # the fixture: run(*argv) -> (exit status, stdout, stderr)


def subjects(root: Path) -> list[str]:
    return git(root, "log", "--format=%s").splitlines()


# -- an interrupted import -----------------------------------------------------

@pytest.fixture
def export_file(tmp_path: Path, run) -> Path:
    """An export of 3 volumes, 3 snapshots of them and a connection."""
    source = tmp_path / "source"
    with Store(source, watch="off") as store:
        for n in range(3):
            store.put("volumes", f"v{n}", {"size": n})
            store.put("snapshots", f"s{n}", {"volume_id": f"v{n}"})
        store.put("connections", "c0", {"volume_id": "v0"})
    path = tmp_path / "export.json"
    assert run("--path", source, "export", "-o", path)[0] == 0
    return path


def signal_at_put(monkeypatch, number: int, signum: int) -> list[tuple[str, str]]:
    """Send `signum` to this process inside the `number`th put (the signal
    lands in the middle of a write); the puts made, in order."""
    made: list[tuple[str, str]] = []
    put = Store.put

    def put_then_signal(self, type, id, document, **kwargs):
        made.append((type, id))
        if len(made) == number:
            os.kill(os.getpid(), signum)
        return put(self, type, id, document, **kwargs)
    monkeypatch.setattr(Store, "put", put_then_signal)
    return made


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_import_commits_what_it_wrote_and_says_so(
        run, tmp_path, export_file, monkeypatch, signum, status):
    target = tmp_path / "target"
    assert run("--path", target, "init", "--git")[0] == 0
    made = signal_at_put(monkeypatch, 3, signum)
    code, out, err = run("--path", target, "import", export_file)
    name = signal.Signals(signum).name
    assert (code, out) == (status, "")
    assert err.splitlines() == [
        f"gitpersist: import interrupted: 3 of 7 records written and committed ({name}); "
        "run it again to finish (records already there are left as they are)",
        f"gitpersist: interrupted ({name})"]
    # the record the signal landed in is whole; volumes come first
    assert made == [("volumes", "v0"), ("volumes", "v1"), ("volumes", "v2")]
    assert subjects(target)[0] == (
        f"import export.json: interrupted: 3 of 7 records written ({name})")
    assert sorted(git(target, "show", "--format=", "--name-only", "HEAD").split()) == sorted(
        paths.record_path("volumes", f"v{n}") for n in range(3))
    assert git(target, "status", "--porcelain") == ""

    monkeypatch.undo()
    code, out, err = run("--path", target, "import", export_file)
    assert (code, err) == (0, "")
    assert subjects(target)[:2] == [
        "import export.json: 7 records",
        f"import export.json: interrupted: 3 of 7 records written ({name})"]
    assert len(git(target, "show", "--format=", "--name-only", "HEAD").split()) == 4
    assert json.loads(run("--path", target, "export")[1])["types"] == \
        json.loads(export_file.read_text())["types"]


def test_an_import_interrupted_before_any_write_commits_nothing(
        run, tmp_path, export_file, monkeypatch):
    target = tmp_path / "target"
    assert run("--path", target, "init", "--git")[0] == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(Store, "put", interrupted)
    code, _, err = run("--path", target, "import", export_file)
    assert code == 130
    assert "import interrupted: 0 of 7 records written (SIGINT)" in err
    assert subjects(target) == ["gitpersist: new store"]


def test_an_import_stopped_by_an_error_commits_what_it_wrote(
        run, tmp_path, export_file, monkeypatch):
    from gitpersist.errors import StoreError
    target = tmp_path / "target"
    assert run("--path", target, "init", "--git")[0] == 0
    put, made = Store.put, []

    def failing(self, type, id, document, **kwargs):
        made.append(id)
        if len(made) == 5:
            raise StoreError("disk full")
        return put(self, type, id, document, **kwargs)
    monkeypatch.setattr(Store, "put", failing)
    code, _, err = run("--path", target, "import", export_file)
    assert code == 1
    assert err.splitlines()[-1] == "gitpersist: error: disk full"
    assert subjects(target)[0] == (
        "import export.json: interrupted: 4 of 7 records written (StoreError: disk full)")


def test_records_are_written_in_reference_order():
    from gitpersist.transfer import in_reference_order
    writes = [("connections", "c", {}), ("key_values", "k", {}), ("snapshots", "s", {}),
              ("volumes", "v", {}), ("a_loop", "x", {})]
    references = {("snapshots", "volume_id"): "volumes",
                  ("connections", "volume_id"): "volumes",
                  ("a_loop", "self"): "a_loop"}
    order = [type for type, _, _ in in_reference_order(writes, references)]
    # referenced types first, else as given; a type naming itself is no cycle
    assert order == ["key_values", "volumes", "a_loop", "connections", "snapshots"]
