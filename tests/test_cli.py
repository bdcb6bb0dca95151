"""The `gitpersist` command: every subcommand, bad arguments, real runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitpersist import Store, cli, paths
from gitpersist.progress import Progress

BIN = Path(sys.executable).parent


@pytest.fixture
def run(capsys):
    """run(*argv) -> (exit status, stdout, stderr), in-process."""
    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store with two volumes and a snapshot (no git)."""
    path = tmp_path / "store"
    with Store(path, watch="off") as store:
        store.put("volumes", "v1", {"display_name": "data", "size": 1,
                                    "status": "available", "metadata": {"a": 1}})
        store.put("volumes", "v2", {"display_name": "logs", "size": 10,
                                    "status": "in-use"})
        store.put("snapshots", "s1", {"volume_id": "v1", "display_name": "snap"})
    return path


def record_file(root: Path, type: str, id: str) -> Path:
    return root.joinpath(*paths.record_path(type, id).split("/"))


# -- init and opening --------------------------------------------------------

def test_init_creates_a_store_and_says_so(run, tmp_path):
    code, out, err = run("--path", tmp_path / "new", "init")
    assert (code, err) == (0, "")
    assert out == f"Initialized empty gitpersist store in {tmp_path / 'new'}\n"
    assert (tmp_path / "new" / ".gitpersist" / "format.json").is_file()
    assert not (tmp_path / "new" / ".git").exists()
    code, out, _ = run("--path", tmp_path / "new", "init")
    assert code == 0 and out.startswith("Reinitialized existing gitpersist store")


def test_init_refuses_a_folder_with_other_content(run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = run("--path", tmp_path, "init")
    assert code == 1 and out == ""
    assert err == (f"gitpersist: error: {tmp_path} is not empty; a store needs a folder "
                   f"of its own (try --path {tmp_path / 'metadata'})\n")
    assert not (tmp_path / ".gitpersist").exists()


def test_path_comes_from_option_then_environment_then_cwd(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("init")[0] == 0
    assert (tmp_path / ".gitpersist").is_dir()
    monkeypatch.setenv(cli.ENV_PATH, str(tmp_path / "env"))
    assert run("init")[0] == 0
    assert (tmp_path / "env" / ".gitpersist").is_dir()
    # --path wins over the environment, before or after the command.
    assert run("init", "--path", tmp_path / "opt")[0] == 0
    assert (tmp_path / "opt" / ".gitpersist").is_dir()


@pytest.mark.parametrize("argv", [
    ["ls", "volumes"], ["show", "volumes", "v1"], ["log"], ["export"], ["fsck"],
    ["diff", "volumes", "v1", "HEAD"], ["show", "volumes", "v1", "--rev", "HEAD"],
    ["import", "x.json"], ["migrate", "--from-db", "sqlite:///x.db"],
    ["restore", "volumes", "v1", "--rev", "HEAD"],
])
def test_commands_refuse_a_folder_without_a_store_and_create_nothing(run, tmp_path, argv):
    target = tmp_path / "nothing-here"
    (tmp_path / "x.json").write_text('{"gitpersist_export": 1, "format": 1, "types": {}}')
    os.chdir(tmp_path)
    code, out, err = run("--path", target, *argv)
    assert code == 1 and out == ""
    assert err == (f"gitpersist: error: no gitpersist store at {target}; "
                   "run `gitpersist init` first\n")
    assert not target.exists()


# -- ls and show -------------------------------------------------------------

def test_ls_prints_a_table(run, store_path):
    code, out, err = run("--path", store_path, "ls", "volumes")
    assert (code, err) == (0, "")
    assert out == ("ID  DISPLAY_NAME  SIZE  STATUS\n"
                   "v1  data          1     available\n"
                   "v2  logs          10    in-use\n")


def test_ls_json_prints_records_with_their_ids(run, store_path):
    code, out, _ = run("--path", store_path, "ls", "volumes", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"id": "v1", "display_name": "data", "size": 1, "status": "available",
         "metadata": {"a": 1}},
        {"id": "v2", "display_name": "logs", "size": 10, "status": "in-use"}]


@pytest.mark.parametrize("where, ids", [
    (["size=10"], ["v2"]),                       # a JSON number
    (["size=\"10\""], []),                       # the string "10" is not 10
    (["display_name=data"], ["v1"]),             # not JSON: a string
    (["display_name=\"data\""], ["v1"]),         # a JSON string
    (["metadata={\"a\": 1}"], ["v1"]),           # JSON objects compare whole
    (["status=in-use", "size=10"], ["v2"]),      # every filter holds
    (["status=in-use", "size=1"], []),
    (["nosuchfield=null"], ["v1", "v2"]),        # absent equals null
])
def test_ls_where_parses_values_as_json_else_string(run, store_path, where, ids):
    argv = [arg for item in where for arg in ("--where", item)]
    code, out, _ = run("--path", store_path, "ls", "volumes", "--json", *argv)
    assert code == 0
    assert [record["id"] for record in json.loads(out)] == ids


def test_ls_where_on_a_field_called_type(run, tmp_path):
    with Store(tmp_path, watch="off") as store:
        store.put("things", "a", {"type": "x"})
        store.put("things", "b", {"type": "y"})
    code, out, _ = run("--path", tmp_path, "ls", "things", "--where", "type=y")
    assert (code, out) == (0, "ID  TYPE\nb   y\n")


def test_ls_columns_and_long_cells(run, tmp_path):
    with Store(tmp_path, watch="off") as store:
        store.put("notes", "n1", {"text": "x" * 100, "tags": ["a", "b"], "n": None})
    code, out, _ = run("--path", tmp_path, "ls", "notes", "--columns", "tags,n,text")
    assert code == 0
    assert out.splitlines() == [
        "ID  TAGS       N  TEXT",
        "n1  [\"a\",\"b\"]  -  " + "x" * 39 + "…"]


def test_ls_of_a_type_the_store_lacks_says_so_on_stderr(run, store_path):
    code, out, err = run("--path", store_path, "ls", "connections")
    assert (code, out) == (0, "")
    assert err == ("gitpersist: warning: no records of type 'connections' "
                   "(the store has snapshots, volumes)\n")
    assert run("--path", store_path, "ls", "connections", "--json")[1] == "[]\n"


def test_show_prints_fields_or_json(run, store_path):
    code, out, _ = run("--path", store_path, "show", "volumes", "v1")
    assert code == 0
    assert out == ("FIELD         VALUE\n"
                   "id            v1\n"
                   "display_name  data\n"
                   "metadata      {\"a\":1}\n"
                   "size          1\n"
                   "status        available\n")
    code, out, _ = run("--path", store_path, "show", "volumes", "v1", "--json")
    assert json.loads(out) == {"id": "v1", "display_name": "data", "size": 1,
                               "status": "available", "metadata": {"a": 1}}


def test_show_of_a_missing_record_fails(run, store_path):
    code, out, err = run("--path", store_path, "show", "volumes", "nope")
    assert (code, out) == (1, "")
    assert err == f"gitpersist: error: no record volumes 'nope' in {store_path}\n"


def test_a_corrupt_record_is_named_and_the_rest_listed(run, store_path):
    broken = record_file(store_path, "volumes", "v2")
    broken.write_text("{not json")
    code, out, err = run("--path", store_path, "ls", "volumes")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "v1"]
    assert str(broken) in err and "not valid JSON" in err
    code, out, err = run("--path", store_path, "show", "volumes", "v2")
    assert code == 1 and err.startswith(f"gitpersist: error: corrupt record {broken}")
    assert "Traceback" not in err


# -- export and import -------------------------------------------------------

def test_export_then_import_copies_every_record(run, store_path, tmp_path):
    code, out, err = run("--path", store_path, "export")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["gitpersist_export"] == 1 and document["format"] == 1
    assert sorted(document["types"]) == ["snapshots", "volumes"]
    assert [r["id"] for r in document["types"]["volumes"]] == ["v1", "v2"]

    export_file = tmp_path / "export.json"
    code, out, err = run("--path", store_path, "export", "-o", export_file)
    assert (code, out) == (0, "")
    assert err == f"exported 3 records to {export_file}\n"
    assert json.loads(export_file.read_text()) == document

    copy = tmp_path / "copy"
    assert run("--path", copy, "init")[0] == 0
    code, out, err = run("--path", copy, "import", export_file)
    assert (code, err) == (0, "")
    assert out == f"imported 1 snapshots, 2 volumes from {export_file}\n"
    with Store(store_path, watch="off") as a, Store(copy, watch="off") as b:
        for type in ("volumes", "snapshots"):
            assert a.all(type) == b.all(type)


def test_import_reads_stdin(run, store_path, tmp_path, monkeypatch):
    document = {"gitpersist_export": 1, "format": 1,
                "types": {"things": [{"id": "t1", "x": 1}]}}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        json.dumps(document).encode())))
    code, out, _ = run("--path", store_path, "import", "-")
    assert (code, out) == (0, "imported 1 things from -\n")
    with Store(store_path, watch="off") as store:
        assert store.get("things", "t1") == {"id": "t1", "x": 1}


@pytest.mark.parametrize("content, message", [
    ("{nope", "not valid JSON"),
    ('{"a": 1}', "neither a `gitpersist export` document nor cinderlib dumps() output"),
    ('{"gitpersist_export": 2, "format": 1, "types": {}}', "export version 2"),
    ('{"gitpersist_export": 1, "format": 9, "types": {}}', "store format 9"),
    ('{"gitpersist_export": 1, "format": 1, "types": {"Bad": []}}',
     "'Bad' is not a type name"),
    ('{"gitpersist_export": 1, "format": 1, "types": {"t": [{"x": 1}]}}',
     'types.t[0]: not a record (an object with a string "id")'),
    ('{"gitpersist_export": 1, "format": 1, "types": {"t": [{"id": ""}]}}',
     "ids cannot be empty"),
    ('{"gitpersist_export": 1, "format": 1, "types": {"t": [{"id": "a"}, {"id": "a"}]}}',
     "types.t[1]: t 'a' appears twice"),
])
def test_import_of_a_bad_file_names_the_fault_and_stores_nothing(
        run, store_path, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    before = sorted(p.relative_to(store_path) for p in store_path.rglob("*"))
    code, out, err = run("--path", store_path, "import", bad)
    assert (code, out) == (1, "")
    assert err.startswith("gitpersist: error: ") and message in err, err
    assert sorted(p.relative_to(store_path) for p in store_path.rglob("*")) == before


def test_import_of_a_missing_file(run, store_path, tmp_path):
    code, _, err = run("--path", store_path, "import", tmp_path / "absent.json")
    assert code == 1
    assert err == (f"gitpersist: error: cannot read {tmp_path / 'absent.json'}: "
                   "No such file or directory\n")


def test_export_of_a_store_with_a_corrupt_record_fails_loudly(run, store_path):
    record_file(store_path, "snapshots", "s1").write_text("[]")
    code, out, err = run("--path", store_path, "export")
    assert code == 1
    assert [r["id"] for r in json.loads(out)["types"]["volumes"]] == ["v1", "v2"]
    assert "snapshots" not in json.loads(out)["types"]
    assert err.endswith("gitpersist: error: 1 corrupt record file(s) left out of the "
                        "export; run `gitpersist fsck`\n")


# -- fsck --------------------------------------------------------------------

def test_fsck_of_a_clean_store(run, store_path):
    code, out, err = run("--path", store_path, "fsck")
    assert (code, out, err) == (0, "", f"{store_path}: clean\n")
    code, out, _ = run("--path", store_path, "fsck", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_fsck_names_each_problem_and_repair_fixes_the_safe_ones(run, store_path):
    volume = record_file(store_path, "volumes", "v1")
    volume.chmod(0o644)
    stale = volume.parent / f".{volume.name}.999999999.abcd1234.tmp"
    stale.write_text("half")
    (store_path / "volumes" / "notes.txt").write_text("?")
    record_file(store_path, "volumes", "v2").write_text('{"id": "other"}')
    code, out, err = run("--path", store_path, "fsck")
    assert code == 1
    v1 = paths.record_path("volumes", "v1")
    v2 = paths.record_path("volumes", "v2")
    assert sorted(out.splitlines()) == sorted([
        f"error: stale-temp: {v1.rsplit('/', 1)[0]}/{stale.name}: temp file left by "
        "a writer that is gone",
        f"error: permissions: {v1}: mode 0644 is looser than 0600",
        f"error: id-mismatch: {v2}: holds id 'other', which belongs at "
        f"{paths.record_path('volumes', 'other')}",
        "error: unknown-file: volumes/notes.txt: file the store cannot account for "
        "(not a shard folder)"])
    assert err == f"{store_path}: 4 problems\n"

    code, out, err = run("--path", store_path, "fsck", "--repair")
    assert code == 1
    assert err == f"{store_path}: 2 problems left, 2 repaired\n"
    assert not stale.exists() and volume.stat().st_mode & 0o777 == 0o600
    assert run("--path", store_path, "fsck")[2] == f"{store_path}: 2 problems\n"


def test_fsck_json_lists_problems(run, store_path):
    volume = record_file(store_path, "volumes", "v1")
    volume.unlink()
    code, out, _ = run("--path", store_path, "fsck", "--json")
    assert code == 1
    assert json.loads(out) == [{
        "kind": "empty-folder", "path": f"volumes/{volume.parent.name}",
        "message": "empty folder (left after deletions)",
        "repairable": True, "repaired": False, "note": True}, {
        "kind": "dangling-reference", "path": paths.record_path("snapshots", "s1"),
        "message": "volume_id 'v1' names no record in volumes",
        "repairable": False, "repaired": False, "note": False}]


def test_fsck_runs_on_a_store_that_lost_its_format_file(run, store_path):
    (store_path / ".gitpersist" / "format.json").unlink()
    code, out, _ = run("--path", store_path, "fsck")
    assert code == 1
    assert out == ("error: format: .gitpersist/format.json: missing: "
                   "the store's format is unknown\n")


# -- bad arguments -----------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["ls"], "the following arguments are required: TYPE"),
    (["ls", "Volumes"], "argument TYPE: 'Volumes' is not a type name"),
    (["ls", "volumes", "--where", "size"], "'size': use FIELD=VALUE"),
    (["ls", "volumes", "--where", "=1"], "'=1': use FIELD=VALUE"),
    (["log", "-n", "0"], "argument -n: '0' is not a positive number"),
    (["log", "-n", "x"], "argument -n: 'x' is not a positive number"),
    (["restore", "volumes", "v1"], "the following arguments are required: --rev"),
    (["diff", "volumes", "v1"], "the following arguments are required: REV1"),
    (["migrate"], "the following arguments are required: --from-db"),
    (["show", "volumes"], "the following arguments are required: ID"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: gitpersist") and message in err, err


# -- progress ----------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_erases_itself():
    stream = _Terminal()
    with Progress("import", 4, stream=stream) as bar:
        for _ in range(4):
            bar.advance()
    text = stream.getvalue()
    assert "import [" + "#" * 30 + "] 4/4 100%" in text
    assert text.endswith("\r" + " " * len("import [" + "#" * 30 + "] 4/4 100%") + "\r")


def test_progress_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    with Progress("import", 4, stream=stream) as bar:
        bar.advance(4)
    assert stream.getvalue() == ""


# -- real processes ----------------------------------------------------------

def test_console_script_and_python_m_run_the_command(store_path):
    for command in ([str(BIN / "gitpersist")], [sys.executable, "-m", "gitpersist"]):
        done = subprocess.run([*command, "--path", str(store_path), "ls", "volumes",
                               "--where", "size=1"],
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.splitlines()[1].split()[:2] == ["v1", "data"]
        done = subprocess.run([*command, "--path", str(store_path / "nope"), "ls", "x"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "run `gitpersist init` first" in done.stderr
        done = subprocess.run([*command, "--version"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("gitpersist ")
