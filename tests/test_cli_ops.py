"""The `gitpersist` command as an ops team uses it (issue 16): commands cut
short leave honest history, long work shows progress, git's habits."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import pytest

import test_cli
from gitpersist import Store, cli, paths
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


# -- an unreadable folder or file ----------------------------------------------

def deny(monkeypatch, *denied: Path) -> None:
    """Listing or opening anything at or below `denied` fails as chmod 000
    makes it fail for a user that is not root (these tests may run as root,
    whom permissions do not stop)."""
    prefixes = [str(path) for path in denied]
    scandir, open_ = os.scandir, os.open

    def refused(path) -> bool:
        path = os.fspath(path) if not isinstance(path, int) else ""
        return any(path == p or path.startswith(p + os.sep) for p in prefixes)

    def guarded_scandir(path="."):
        if refused(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    def guarded_open(path, *args, **kwargs):
        if kwargs.get("dir_fd") is None and refused(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return open_(path, *args, **kwargs)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    monkeypatch.setattr(os, "open", guarded_open)


@pytest.fixture
def three_volumes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(store, the shard folder of volume a, the file of volume b): a, b and
    c in three shards."""
    root = tmp_path / "store"
    with Store(root, watch="off") as store:
        for id in ("a", "b", "c"):
            store.put("volumes", id, {"size": 1})
    shards = {paths.record_path("volumes", id).split("/")[1] for id in "abc"}
    assert len(shards) == 3
    return (root, root / os.path.dirname(paths.record_path("volumes", "a")),
            root / paths.record_path("volumes", "b"))


def test_store_all_names_an_unreadable_folder_and_lists_the_rest(three_volumes, monkeypatch):
    root, folder, _ = three_volumes
    deny(monkeypatch, folder)
    with Store(root, watch="off") as store:
        assert [record["id"] for record in store.all("volumes")] == ["b", "c"]
        [broken] = store.corrupt("volumes")
    assert broken.path == str(folder)
    assert str(broken) == (f"unreadable folder {folder}: Permission denied "
                           "(its records are left out)")


def test_ls_and_export_warn_of_an_unreadable_folder_and_list_the_rest(
        run, three_volumes, monkeypatch):
    root, folder, _ = three_volumes
    deny(monkeypatch, folder)
    code, out, err = run("--path", root, "ls", "volumes")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "b", "c"]
    assert err == (f"gitpersist: warning: skipping unreadable folder {folder}: "
                   "Permission denied (its records are left out)\n")
    code, out, err = run("--path", root, "export")
    assert [r["id"] for r in json.loads(out)["types"]["volumes"]] == ["b", "c"]
    assert "Traceback" not in err and f"unreadable folder {folder}" in err
    assert code == 1        # an export that left records out says so


def test_fsck_names_an_unreadable_folder_and_file_once_and_checks_the_rest(
        run, three_volumes, monkeypatch):
    root, folder, file = three_volumes
    (root / paths.record_path("volumes", "c")).write_text("{")
    deny(monkeypatch, folder, file)
    code, out, err = run("--path", root, "fsck")
    assert code == 1
    relfolder = os.path.relpath(folder, root)
    assert out.splitlines() == sorted([
        f"error: unreadable: {relfolder}: folder cannot be listed (Permission denied): "
        "its records were not checked",
        f"error: unreadable: {paths.record_path('volumes', 'b')}: file cannot be read "
        "(Permission denied)",
        f"error: corrupt: {paths.record_path('volumes', 'c')}: not valid JSON "
        "(unexpected end of data: line 1 column 2 (char 1))"], key=lambda line: line.split(": ")[2])
    assert err == f"{root}: 3 problems\n"


# -- git's habits ----------------------------------------------------------------

def test_the_store_is_found_from_any_folder_inside_it(run, three_volumes, monkeypatch):
    root, folder, _ = three_volumes
    monkeypatch.chdir(folder)
    code, out, _ = run("ls", "volumes")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["ID", "a", "b", "c"]
    code, out, _ = run("--path", root / "volumes", "show", "volumes", "a")
    assert code == 0 and "size" in out
    monkeypatch.setenv("GITPERSIST_PATH", str(root / "volumes"))
    assert run("ls", "volumes")[0] == 0


def test_init_refuses_to_make_a_store_inside_a_store(run, three_volumes):
    root, folder, _ = three_volumes
    for inside in (folder, root / "volumes" / "new", root / "other"):
        code, out, err = run("--path", inside, "init")
        assert (code, out) == (1, "")
        assert err == (f"gitpersist: error: {inside} is inside the gitpersist store at "
                       f"{root}; a store inside a store would be read as one of its types "
                       "(try --path outside it)\n")
        assert not (inside / ".gitpersist").exists()
    assert run("--path", root, "init")[1].startswith("Reinitialized existing")


def test_ls_where_takes_operators_and_dotted_paths(run, tmp_path):
    with Store(tmp_path / "s", watch="off") as store:
        store.put("volumes", "a", {"size": 1, "meta": {"owner": "ops"}})
        store.put("volumes", "b", {"size": 10, "meta": {"owner": "dev"}})
    for where, expected in (("size>1", ["b"]), ("size<=10", ["a", "b"]),
                            ("meta.owner!=ops", ["b"]), ("meta.owner=ops", ["a"])):
        code, out, _ = run("--path", tmp_path / "s", "ls", "volumes", "--where", where,
                           "--json")
        assert code == 0 and [r["id"] for r in json.loads(out)] == expected, where


# -- empties, unknowns, prefixes, did you mean -------------------------------------

@pytest.fixture
def git_store(tmp_path: Path) -> Path:
    root = tmp_path / "g"
    with Store(root, git=True, watch="off") as store:
        store.put("volumes", "abc123", {"size": 1})
        store.put("volumes", "abc123", {"size": 2})
        store.put("volumes", "abd456", {"size": 3})
        store.put("snapshots", "s1", {"volume_id": "abc123"})
        store.delete("snapshots", "s1")
    return root


def test_an_empty_type_prints_its_header(run, git_store):
    code, out, err = run("--path", git_store, "ls", "snapshots")
    assert (code, out, err) == (0, "ID\n", "")
    code, out, _ = run("--path", git_store, "ls", "volumes", "--where", "size>9",
                       "--columns", "size")
    assert (code, out) == (0, "ID  SIZE\n")


def test_diff_of_an_unknown_record_fails_like_log_and_show(run, git_store):
    for argv in (["diff", "volumes", "nope", "HEAD"], ["log", "volumes", "nope"],
                 ["show", "volumes", "nope"], ["diff", "volumes", "nope", "HEAD~1", "HEAD"]):
        code, out, err = run("--path", git_store, *argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith("gitpersist: error: no "), argv
    # equal revisions of a known record: no output, success (as git diff)
    assert run("--path", git_store, "diff", "volumes", "abd456", "HEAD")[:2] == (0, "")


def test_unambiguous_id_prefixes_work_in_show_log_diff_and_restore(run, git_store):
    code, out, _ = run("--path", git_store, "show", "volumes", "abc", "--json")
    assert code == 0 and json.loads(out)["id"] == "abc123"
    code, out, _ = run("--path", git_store, "log", "volumes", "abd", "--json")
    assert code == 0 and len(json.loads(out)) == 1
    code, out, _ = run("--path", git_store, "diff", "volumes", "abc1", "HEAD~4")
    assert code == 0 and '-  "size": 1' in out
    code, out, _ = run("--path", git_store, "restore", "volumes", "abc1", "--rev", "HEAD~4")
    assert code == 0 and out.startswith("volumes abc123: restored from HEAD~4")
    code, out, err = run("--path", git_store, "show", "volumes", "ab")
    assert (code, out) == (1, "")
    assert err == ("gitpersist: error: volumes id prefix 'ab' is ambiguous: "
                   "abc123, abd456\n")


def test_did_you_mean_for_a_mistyped_command(run, git_store, capsys):
    with pytest.raises(SystemExit) as exit:
        run("--path", git_store, "lss", "volumes")
    assert exit.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith("; did you mean 'ls'?")


# -- progress ---------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_phase_shows_what_it_does_at_once_and_quiet_shows_nothing():
    from gitpersist.progress import Progress
    stream = Terminal()
    with Progress("migrate", stream=stream, clock=lambda: 5.0) as bar, \
            bar.phase("reading sqlite:///x.db"):
        assert stream.getvalue() == "\rmigrate: reading sqlite:///x.db 0s"
    stream = Terminal()
    with Progress("import", 3, stream=stream, quiet=True) as bar, bar.phase("reading"):
        bar.advance(3)
    assert stream.getvalue() == ""


def testdurations_read_like_a_clock():
    from gitpersist.progress import duration
    assert [duration(s) for s in (0.4, 42, 187, 3725)] == ["0s", "42s", "3m07s", "1h02m"]


# -- formats, limits, types, dates, the pager ----------------------------------------

def test_ls_formats_and_limit(run, git_store):
    root = git_store
    code, out, _ = run("--path", root, "ls", "volumes", "--limit", "1")
    assert (code, out) == (0, "ID      SIZE\nabc123  2\n")
    code, out, _ = run("--path", root, "ls", "volumes", "--format", "ndjson")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": "abc123", "size": 2}, {"id": "abd456", "size": 3}]
    code, out, _ = run("--path", root, "ls", "volumes", "--format", "csv", "--columns", "size")
    assert out == "id,size\nabc123,2\nabd456,3\n"
    assert json.loads(run("--path", root, "ls", "volumes", "--json", "--limit", "1")[1]) == [
        {"id": "abc123", "size": 2}]


def test_types_lists_each_type_and_its_records(run, git_store):
    code, out, _ = run("--path", git_store, "types")
    assert (code, out) == (0, "TYPE       RECORDS\nsnapshots  0\nvolumes    2\n")
    assert json.loads(run("--path", git_store, "types", "--json")[1]) == [
        {"type": "snapshots", "records": 0}, {"type": "volumes", "records": 2}]


def test_log_dates_carry_their_zone_or_follow_date(run, git_store):
    import datetime
    from gitpersist import output
    code, out, _ = run("--path", git_store, "log", "-n", "1")
    date = out.splitlines()[1].split("  ")[1]
    assert datetime.datetime.strptime(date, "%Y-%m-%d %H:%M:%S %z").tzinfo is not None
    out = run("--path", git_store, "log", "-n", "1", "--date", "iso")[1]
    assert datetime.datetime.fromisoformat(out.splitlines()[1].split("  ")[1]).utcoffset() \
        is not None
    assert "ago" in run("--path", git_store, "log", "--limit", "1", "--date", "relative")[1]
    when = datetime.datetime(2026, 11, 24, 16, 41, 37,
                             tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert output.date(when) == "2026-11-24 16:41:37 +0200"
    assert output.date(when, "relative", when + datetime.timedelta(hours=3)) == "3 hours ago"
    assert output.date(when, "local").endswith(when.astimezone().strftime("%z"))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_table_on_a_terminal_goes_through_the_pager(run, tmp_path, monkeypatch):
    root, paged = tmp_path / "s", tmp_path / "paged.txt"
    with Store(root, watch="off") as store:
        for n in range(30):
            store.put("volumes", f"v{n:02d}", {"size": n})
    monkeypatch.setenv("GITPERSIST_PAGER", f"cat > {paged}")
    monkeypatch.setenv("LINES", "10")
    terminal = Tty()
    monkeypatch.setattr("sys.stdout", terminal)
    assert cli.main(["--path", str(root), "ls", "volumes"]) == 0
    assert terminal.getvalue() == ""
    assert paged.read_text().splitlines()[:2] == ["ID   SIZE", "v00  0"]
    paged.unlink()
    assert cli.main(["--path", str(root), "--no-pager", "ls", "volumes"]) == 0
    assert len(terminal.getvalue().splitlines()) == 31 and not paged.exists()
    monkeypatch.setenv("GITPERSIST_PAGER", "")        # empty: no pager, as git
    assert cli.main(["--path", str(root), "ls", "volumes", "--limit", "3"]) == 0
    assert not paged.exists()
