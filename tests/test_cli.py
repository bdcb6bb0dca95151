"""The `gitpersist` command: every subcommand, bad arguments, real runs."""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitpersist import Store, cli, paths
from gitpersist.files import HOST
from gitpersist.cinder import INSTALL
from gitpersist.progress import Progress
from helpers import git

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
    (tmp_path / "cwd").mkdir()       # side by side: init refuses a store in a store
    monkeypatch.chdir(tmp_path / "cwd")
    assert run("init")[0] == 0
    assert (tmp_path / "cwd" / ".gitpersist").is_dir()
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
def test_commands_refuse_a_folder_without_a_store_and_create_nothing(run, tmp_path, argv,
                                                                    monkeypatch):
    target = tmp_path / "nothing-here"
    (tmp_path / "x.json").write_text('{"gitpersist_export": 1, "format": 1, "types": {}}')
    monkeypatch.chdir(tmp_path)     # not os.chdir: later tests' interpreters import from here
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
    (["metadata.a=1"], ["v1"]),                  # a nested field
    (["metadata.a=2"], []),
    (["size.a=null"], ["v1", "v2"]),             # nothing nested in a number
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
        store.put("notes", "n1", {"text": "x" * 100, "tags": ["a", "b"], "n": None,
                                  "by": {"name": "ann"}, "a.b": 1})
    code, out, _ = run("--path", tmp_path, "ls", "notes", "--columns",
                       "tags,n,by.name,a.b,text")
    assert code == 0
    assert out.splitlines() == [
        "ID  TAGS       N  BY.NAME  A.B  TEXT",
        "n1  [\"a\",\"b\"]  -  ann      1    " + "x" * 39 + "…"]


def test_control_characters_cannot_break_a_table_or_drive_the_terminal(run, tmp_path):
    with Store(tmp_path, watch="off") as store:
        store.put("notes", "a\nb", {"text": "red \x1b[31m\ttab", "k\x07": "é"})
    code, out, _ = run("--path", tmp_path, "ls", "notes")
    assert out.splitlines() == ["ID    K\\x07  TEXT",
                                "a\\nb  é      red \\x1b[31m\\ttab"]
    code, out, _ = run("--path", tmp_path, "show", "notes", "a\nb")
    assert out.splitlines()[1:] == ["id     a\\nb", "k\\x07  é",
                                    "text   red \\x1b[31m\\ttab"]


def test_ls_of_a_type_the_store_lacks_fails_saying_so(run, store_path):
    code, out, err = run("--path", store_path, "ls", "connections")
    assert (code, out) == (1, "")
    assert err == (f"gitpersist: error: no type 'connections' in {store_path} "
                   "(it has snapshots, volumes)\n")
    assert run("--path", store_path, "ls", "volume", "--json")[2] == (
        f"gitpersist: error: no type 'volume' in {store_path} (it has snapshots, "
        "volumes); did you mean 'volumes'?\n")


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


def test_fsck_checks_a_store_made_with_other_modes_against_them(run, tmp_path, capsys):
    path = tmp_path / "group"
    with Store(path, watch="off", file_mode="0640", dir_mode="0750") as store:
        store.put("things", "a", {})
    code, out, _ = run("--path", path, "fsck")
    assert code == 1 and "things/" in out and "mode 0640 is looser than 0600" in out
    assert run("--path", path, "fsck", "--file-mode", "0640", "--dir-mode", "0750") == \
        (0, "", f"{path}: clean\n")
    with pytest.raises(SystemExit) as exit:     # argparse: bad arguments
        run("--path", path, "fsck", "--file-mode", "rw-r-----")
    assert exit.value.code == 2
    assert "--file-mode: 'rw-r-----' is not a permission mode" in capsys.readouterr().err


def test_fsck_names_each_problem_and_repair_fixes_the_safe_ones(run, store_path):
    volume = record_file(store_path, "volumes", "v1")
    volume.chmod(0o644)
    stale = volume.parent / f".{volume.name}.999999999.{HOST}.abcd1234.tmp"
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
    (["log", "-n", "0"], "argument -n/--limit: '0' is not a positive number"),
    (["log", "-n", "x"], "argument -n/--limit: 'x' is not a positive number"),
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
    stream, now = _Terminal(), [100.0]
    with Progress("import", 4, stream=stream, clock=lambda: now[0]) as bar:
        for _ in range(4):
            bar.advance()
            now[0] += 0.5
    text = stream.getvalue()
    # from the first record on: count, rate and time left
    first = "import [" + "#" * 7 + "-" * 23 + "] 1/4 25% -/s ETA -"
    last = "import [" + "#" * 30 + "] 4/4 100% 3/s ETA 0s"
    assert text.startswith("\r" + first)
    assert "\r" + "import [" + "#" * 15 + "-" * 15 + "] 2/4 50% 4/s ETA 0s" in text
    assert last in text
    assert text.endswith("\r" + " " * len(last) + "\r")


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
        done = subprocess.run([*command, "--path", str(store_path.parent / "nope"), "ls", "x"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "run `gitpersist init` first" in done.stderr
        done = subprocess.run([*command, "--version"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("gitpersist ")


# -- git history -------------------------------------------------------------

USER = ["-c", "user.name=Ops User", "-c", "user.email=ops@example.com"]


@pytest.fixture
def git_store(tmp_path, run) -> Path:
    """A git store where volume v1 went creating -> available -> size 2."""
    path = tmp_path / "gstore"
    assert run("--path", path, "init", "--git")[0] == 0
    with Store(path, git=True, watch="off", author="Alice <alice@example.com>") as store:
        store.put("volumes", "v1", {"display_name": "data", "size": 1, "status": "creating"})
        store.put("volumes", "v1", {"display_name": "data", "size": 1, "status": "available"})
        store.put("volumes", "v1", {"display_name": "data", "size": 2, "status": "available"})
        store.put("snapshots", "s1", {"volume_id": "v1", "display_name": "snap"})
    return path


def test_init_git_makes_a_repository_and_commits_the_format_file(run, tmp_path):
    path = tmp_path / "g"
    code, out, _ = run("--path", path, "init", "--git")
    assert code == 0
    assert out == (f"Initialized empty gitpersist store in {path} "
                   f"(history in git repository {path})\n")
    assert git(path, "ls-files").split() == [".gitpersist/.gitignore",
                                             ".gitpersist/format.json"]
    assert git(path, "status", "--porcelain") == ""


def test_init_git_inside_an_ops_repository_commits_only_the_store(run, tmp_path):
    repo = tmp_path / "ops"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "playbook.yaml").write_text("tasks: []\n")
    git(repo, "add", "playbook.yaml")
    git(repo, *USER, "commit", "-q", "-m", "ops: initial")
    (repo / "playbook.yaml").write_text("tasks: [x]\n")            # unstaged work
    code, out, _ = run("--path", repo / "metadata", "init", "--git")
    assert code == 0 and out.endswith(f"(history in git repository {repo})\n")
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "metadata/.gitpersist/.gitignore", "metadata/.gitpersist/format.json"]
    assert git(repo, "status", "--porcelain") == " M playbook.yaml\n"


def test_a_store_merely_inside_a_repository_keeps_no_history(run, tmp_path):
    git(tmp_path, "init", "-q")
    assert run("--path", tmp_path / "meta", "init")[1] == (
        f"Initialized empty gitpersist store in {tmp_path / 'meta'}\n")
    code, _, err = run("--path", tmp_path / "meta", "log")
    assert code == 1
    assert err == (f"gitpersist: error: the store at {tmp_path / 'meta'} keeps no git "
                   "history (start one with `gitpersist init --git`)\n")


def test_log_of_a_mistyped_type_or_id_fails_saying_so(run, git_store):
    code, out, err = run("--path", git_store, "log", "volumes", "v9")
    assert (code, out) == (1, "")
    assert err == (f"gitpersist: error: no commit changed "
                   f"{paths.record_path('volumes', 'v9')}\n")
    assert run("--path", git_store, "log", "volume")[2] == \
        "gitpersist: error: no commit changed volume; did you mean 'volumes'?\n"


def test_log_of_the_store_a_type_and_a_record(run, git_store):
    code, out, _ = run("--path", git_store, "log", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [entry["message"] for entry in entries] == [
        "snapshots s1 (snap): created",
        "volumes v1 (data): size 1 -> 2",
        "volumes v1 (data): status creating -> available",
        "volumes v1 (data): created",
        entries[-1]["message"]]             # the init commit of the format file
    assert entries[0]["author"] == "Alice <alice@example.com>"
    assert all(len(entry["commit"]) == 40 for entry in entries)
    assert datetime.datetime.fromisoformat(entries[0]["time"]).tzinfo is not None

    code, out, _ = run("--path", git_store, "log", "volumes", "v1", "-n", "2")
    lines = out.splitlines()
    assert lines[0].split() == ["COMMIT", "DATE", "AUTHOR", "MESSAGE"]
    assert [line.split("  Alice  ")[1].strip() for line in lines[1:]] == [
        "volumes v1 (data): size 1 -> 2", "volumes v1 (data): status creating -> available"]
    assert lines[1].split()[0] == entries[1]["commit"][:10]

    code, out, _ = run("--path", git_store, "log", "snapshots", "--json")
    assert [entry["message"] for entry in json.loads(out)] == ["snapshots s1 (snap): created"]


def test_show_rev_and_diff(run, git_store):
    code, out, _ = run("--path", git_store, "show", "volumes", "v1", "--rev", "HEAD~3",
                       "--json")
    assert (code, json.loads(out)) == (0, {"id": "v1", "display_name": "data", "size": 1,
                                           "status": "creating"})
    code, out, err = run("--path", git_store, "show", "snapshots", "s1", "--rev", "HEAD~1")
    assert (code, out) == (1, "")
    assert err == "gitpersist: error: no record snapshots 's1' at revision HEAD~1\n"

    relpath = paths.record_path("volumes", "v1")
    code, out, _ = run("--path", git_store, "diff", "volumes", "v1", "HEAD~3", "HEAD~1")
    assert code == 0
    assert out == (f"--- a/{relpath}\tHEAD~3\n+++ b/{relpath}\tHEAD~1\n"
                   "@@ -1,6 +1,6 @@\n {\n   \"display_name\": \"data\",\n   \"id\": \"v1\",\n"
                   "-  \"size\": 1,\n-  \"status\": \"creating\"\n+  \"size\": 2,\n"
                   "+  \"status\": \"available\"\n }\n")
    code, out, _ = run("--path", git_store, "diff", "volumes", "v1", "HEAD")
    assert (code, out) == (0, "")           # unchanged since HEAD


def test_bad_revisions_are_errors(run, git_store):
    for argv in (["show", "volumes", "v1", "--rev", "nope"],
                 ["diff", "volumes", "v1", "nope"],
                 ["restore", "volumes", "v1", "--rev", "nope"]):
        code, out, err = run("--path", git_store, *argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith("gitpersist: error: revision 'nope' not found in "), err


def test_restore_writes_and_commits_the_old_version(run, git_store):
    code, out, _ = run("--path", git_store, "restore", "volumes", "v1", "--rev", "HEAD~3")
    assert code == 0
    assert out.startswith("volumes v1: restored from HEAD~3 (revision ")
    with Store(git_store, watch="off") as store:
        assert store.get("volumes", "v1")["status"] == "creating"
    # described as the plugin describes a change (gitpersist.cinder.schema)
    assert git(git_store, "log", "-1", "--format=%s") == (
        "volume v1 (data): size 2 -> 1, status available -> creating "
        "(restored from HEAD~3)\n")
    assert git(git_store, "status", "--porcelain") == ""
    code, out, _ = run("--path", git_store, "restore", "volumes", "v1", "--rev", "HEAD")
    assert out == "volumes v1: already as at HEAD\n"
    # A record absent at REV is deleted.
    code, out, _ = run("--path", git_store, "restore", "snapshots", "s1", "--rev", "HEAD~3")
    assert out == "snapshots s1: absent at HEAD~3, deleted\n"
    assert not record_file(git_store, "snapshots", "s1").exists()


def test_reading_commands_commit_nothing(run, git_store):
    """A record changed behind the store's back stays uncommitted until a
    command that writes (or fsck --repair) runs."""
    volume = record_file(git_store, "volumes", "v1")
    volume.write_text(volume.read_text().replace("available", "error"))
    head = git(git_store, "rev-parse", "HEAD")
    for argv in (["ls", "volumes"], ["show", "volumes", "v1"], ["log"],
                 ["diff", "volumes", "v1", "HEAD"], ["export"]):
        assert run("--path", git_store, *argv)[0] == 0, argv
    assert git(git_store, "rev-parse", "HEAD") == head
    code, out, _ = run("--path", git_store, "diff", "volumes", "v1", "HEAD")
    assert "-  \"status\": \"available\"\n+  \"status\": \"error\"\n" in out

    relpath = paths.record_path("volumes", "v1")
    code, out, err = run("--path", git_store, "fsck")
    assert code == 1
    assert out == f"error: uncommitted: {relpath}: modified since the last commit\n"
    code, out, err = run("--path", git_store, "fsck", "--repair")
    assert code == 0
    assert out == f"repaired: uncommitted: {relpath}: modified since the last commit\n"
    assert err == f"{git_store}: 0 problems left, 1 repaired\n"
    assert git(git_store, "rev-parse", "HEAD") != head
    assert git(git_store, "status", "--porcelain") == ""
    assert run("--path", git_store, "fsck")[0] == 0


def test_import_into_a_git_store_is_one_commit(run, git_store, store_path, tmp_path):
    export_file = tmp_path / "export.json"
    assert run("--path", store_path, "export", "-o", export_file)[0] == 0
    head = git(git_store, "rev-parse", "HEAD").strip()
    code, out, _ = run("--path", git_store, "import", export_file)
    assert code == 0
    assert git(git_store, "rev-list", f"{head}..HEAD").count("\n") == 1
    assert git(git_store, "log", "-1", "--format=%s") == \
        "import export.json: 3 records\n"
    # s1 was already the same: only what changed is in the commit
    assert sorted(git(git_store, "show", "--name-only", "--format=", "HEAD").split()) == \
        sorted([paths.record_path("volumes", "v1"), paths.record_path("volumes", "v2")])
    assert git(git_store, "status", "--porcelain") == ""


def test_an_export_keeps_its_secrets_out_of_the_importing_stores_git(run, tmp_path):
    """A store that keeps connection_info local exports it (the file is
    0600) with its declaration; importing into a fresh git store declares
    it there too, so the password reaches no record file and no commit."""
    password = "Imp0rt-S3cret"
    source = tmp_path / "source"
    with Store(source, watch="off", secret_fields={"connections": ["connection_info"]}) as store:
        store.put("connections", "c1", {"volume_id": "v1", "connection_info": {
            "data": {"auth_password": password}}})
    export_file = tmp_path / "export.json"
    assert run("--path", source, "export", "-o", export_file)[0] == 0
    assert os.stat(export_file).st_mode & 0o777 == 0o600
    assert json.loads(export_file.read_text())["secret_fields"] == {
        "connections": ["connection_info"]}

    copy = tmp_path / "copy"
    assert run("--path", copy, "init", "--git")[0] == 0
    code, out, err = run("--path", copy, "import", export_file)
    assert (code, err) == (0, ""), err
    with Store(copy, watch="off") as store:     # the declaration came along
        assert store.get("connections", "c1")["connection_info"]["data"] == {
            "auth_password": password}
    record = record_file(copy, "connections", "c1").read_bytes()
    assert password.encode() not in record
    history = git(copy, "log", "-p", "--all")
    assert "auth_password" not in history and password not in history


# -- stores and databases written by real cinderlib --------------------------

# cinderlib's own code paths (create_volume, create_snapshot, connect,
# delete, dumps) on a backend whose driver is a mock; argv[1] is the
# persistence config.  Prints the ids made and cinderlib.dumps().
SCENARIO = """
import json, sys, tempfile
import cinderlib
from cinderlib.tests.unit import utils

cinderlib.setup(persistence_config=json.loads(sys.argv[1]),
                file_locks_path=tempfile.mkdtemp(), fail_on_missing_backend=False)
backend = utils.FakeBackend(volume_backend_name="lvm")
for method in ("create_volume", "create_snapshot", "create_export", "delete_volume"):
    getattr(backend.driver, method).return_value = None
backend.driver.initialize_connection.return_value = {
    "driver_volume_type": "iscsi",
    "data": {"target_iqn": "iqn.2024-01.org.example:logs",
             "target_portal": "192.0.2.10:3260", "target_lun": 1}}
data = backend.create_volume(size=1, name="data", extra_specs={"k": "v"})
logs = backend.create_volume(size=2, name="logs")
snap = data.create_snapshot(name="snap1")
conn = logs.connect({"host": "node1", "initiator": "iqn.1993-08.org.debian:01:node1",
                     "multipath": False})
scratch = backend.create_volume(size=3, name="scratch")
scratch.delete()
backend.persistence.set_key_value(cinderlib.KeyValue("k1", "value1"))
print(json.dumps({"volumes": {"data": data.id, "logs": logs.id}, "snapshot": snap.id,
                  "connection": conn.id, "dump": json.loads(cinderlib.dumps())}))
getattr(backend.persistence, "close", lambda: None)()
"""

# Every object a persistence plugin reads back, field by field (object
# fields aside; a volume's type as its specs), as JSON.
READ_BACK = """
import datetime, json, sys, tempfile
import cinderlib
from oslo_versionedobjects import fields

def plain(obj):
    ovo = obj._ovo
    out = {}
    for name, field in ovo.fields.items():
        if isinstance(field, fields.ObjectField):
            continue
        if name == "glance_metadata" and not ovo.obj_attr_is_set(name):
            getattr(ovo, name)          # the db plugin loads it lazily
        value = getattr(ovo, name) if ovo.obj_attr_is_set(name) else None
        if isinstance(value, datetime.datetime):
            value = value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).isoformat()
        out[name] = value
    if "volume_type" in ovo.fields and ovo.obj_attr_is_set("volume_type") and ovo.volume_type:
        out["extra_specs"] = dict(ovo.volume_type.extra_specs or {})
    return out

cinderlib.setup(persistence_config=json.loads(sys.argv[1]),
                file_locks_path=tempfile.mkdtemp(), fail_on_missing_backend=False)
p = cinderlib.Backend.persistence
found = {f"{kind} {obj.id}": plain(obj) for kind, objs in (
    ("volume", p.get_volumes()), ("snapshot", p.get_snapshots()),
    ("connection", p.get_connections())) for obj in objs}
found.update({f"key {kv.key}": kv.value for kv in p.get_key_values()})
print(json.dumps(found, default=str))
"""


def cinderlib_run(code: str, config: dict) -> dict:
    pytest.importorskip("cinderlib")
    from helpers import run_python
    return json.loads(run_python(code, json.dumps(config)).stdout)


def gitpersist(*argv) -> subprocess.CompletedProcess:
    """The console script, in a new process (cinderlib's setup is global),
    running the gitpersist of this tree (not whatever the venv installed)."""
    source = str(Path(__file__).resolve().parents[1])
    return subprocess.run([str(BIN / "gitpersist"), *map(str, argv)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": source})


@pytest.fixture(scope="module")
def cinderlib_store(tmp_path_factory):
    """A git store written by cinderlib through storage="file", and what the
    scenario made there."""
    path = tmp_path_factory.mktemp("cinderlib") / "store"
    made = cinderlib_run(SCENARIO, {"storage": "file", "path": str(path), "git": True})
    return path, made


def copy_of(tmp_path, cinderlib_store) -> tuple[Path, dict]:
    import shutil
    path, made = cinderlib_store
    shutil.copytree(path, tmp_path / "copy", symlinks=True)
    return tmp_path / "copy", made


@pytest.mark.slow
@pytest.mark.cinderlib
def test_ls_and_show_on_a_store_written_by_cinderlib(run, cinderlib_store):
    path, made = cinderlib_store
    data, logs = made["volumes"]["data"], made["volumes"]["logs"]
    code, out, _ = run("--path", path, "ls", "volumes")
    assert code == 0
    rows = sorted(line.split()[:5] for line in out.splitlines()[1:])
    assert rows == sorted([[data, "data", "1", "available", "detached"],
                           [logs, "logs", "2", "in-use", "detached"]])
    assert out.splitlines()[0].split() == ["ID", "DISPLAY_NAME", "SIZE", "STATUS",
                                           "ATTACH_STATUS", "HOST"]
    code, out, _ = run("--path", path, "ls", "volumes", "--where", "display_name=logs",
                       "--json")
    [record] = json.loads(out)
    assert record["id"] == logs and record["host"].endswith("@lvm#lvm")
    code, out, _ = run("--path", path, "ls", "snapshots", "--where", f"volume_id={data}",
                       "--json")
    assert [r["id"] for r in json.loads(out)] == [made["snapshot"]]
    code, out, _ = run("--path", path, "ls", "connections", "--json")
    [connection] = json.loads(out)
    assert (connection["id"], connection["volume_id"]) == (made["connection"], logs)
    assert connection["connector"]["host"] == "node1"
    assert run("--path", path, "ls", "key_values")[1] == "ID  VALUE\nk1  value1\n"

    code, out, _ = run("--path", path, "show", "volumes", data, "--json")
    assert json.loads(out) == json.loads(record_file(path, "volumes", data).read_text())
    assert json.loads(out)["volume_type"] == {"extra_specs": {"k": "v"}}
    code, out, _ = run("--path", path, "show", "snapshots", made["snapshot"])
    assert ["volume_id", data] in [line.split() for line in out.splitlines()]


@pytest.mark.slow
@pytest.mark.cinderlib
def test_history_commands_on_a_store_written_by_cinderlib(run, cinderlib_store, tmp_path):
    path, made = copy_of(tmp_path, cinderlib_store)
    logs = made["volumes"]["logs"]
    code, out, _ = run("--path", path, "log", "volumes", logs, "--json")
    messages = [entry["message"] for entry in json.loads(out)]
    assert messages[-1] == f"volume {logs} (logs): created"
    assert any("status available -> in-use" in message for message in messages), messages

    code, out, _ = run("--path", path, "log", "--json")
    whole = [entry["message"] for entry in json.loads(out)]
    assert whole[0] == "key k1: created"
    assert any(message.endswith("(scratch): deleted") for message in whole)

    first = json.loads(run("--path", path, "log", "volumes", logs, "--json")[1])[-1]["commit"]
    code, out, _ = run("--path", path, "show", "volumes", logs, "--rev", first, "--json")
    old_status = json.loads(out)["status"]
    assert old_status in ("creating", "available")
    code, out, _ = run("--path", path, "diff", "volumes", logs, first)
    assert f'-  "status": "{old_status}",\n' in out and '+  "status": "in-use",\n' in out

    code, out, _ = run("--path", path, "restore", "volumes", logs, "--rev", first)
    assert code == 0 and out.startswith(f"volumes {logs}: restored from {first}")
    # cinderlib reads the restored record back.
    back = cinderlib_run(READ_BACK, {"storage": "file", "path": str(path)})
    assert back[f"volume {logs}"]["status"] == old_status
    code, out, err = run("--path", path, "fsck")
    assert code == 0 and err == f"{path}: clean\n"
    assert all(line.startswith("note: ") for line in out.splitlines())


@pytest.mark.slow
@pytest.mark.cinderlib
def test_export_import_and_cinderlib_dumps_give_the_same_records(
        run, cinderlib_store, tmp_path):
    path, made = cinderlib_store
    export_file, dump_file = tmp_path / "export.json", tmp_path / "dump.json"
    assert run("--path", path, "export", "-o", export_file)[0] == 0
    dump_file.write_text(json.dumps(made["dump"]))
    exported = json.loads(export_file.read_text())["types"]

    # our export, into a plain store
    assert run("--path", tmp_path / "from-export", "init")[0] == 0
    code, out, _ = run("--path", tmp_path / "from-export", "import", export_file)
    assert out == (f"imported 1 connections, 1 key_values, 1 snapshots, 2 volumes "
                   f"from {export_file}\n")
    code, out, _ = run("--path", tmp_path / "from-export", "export")
    assert json.loads(out)["types"] == exported

    # cinderlib's dumps(), through the plugin, into a git store: the same
    # records as cinderlib wrote itself (dumps() holds no key values)
    target = tmp_path / "from-dump"
    assert run("--path", target, "init", "--git")[0] == 0
    done = gitpersist("--path", target, "import", dump_file)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (f"imported 1 connections, 1 snapshots, 2 volumes "
                           f"from {dump_file}\n")
    code, out, _ = run("--path", target, "export")
    assert json.loads(out)["types"] == {
        type: records for type, records in exported.items() if type != "key_values"}
    assert git(target, "log", "-1", "--format=%s") == \
        "import dump.json: 4 records\n"
    assert git(target, "status", "--porcelain") == ""


@pytest.mark.slow
@pytest.mark.cinderlib
def test_import_of_a_broken_cinderlib_dump_stores_nothing(run, cinderlib_store, tmp_path):
    _, made = cinderlib_store
    dump = json.loads(json.dumps(made["dump"]))
    dump[0]["volumes"][1]["ovo"]["versioned_object.data"]["size"] = "huge"
    (tmp_path / "dump.json").write_text(json.dumps(dump))
    assert run("--path", tmp_path / "s", "init")[0] == 0
    done = gitpersist("--path", tmp_path / "s", "import", tmp_path / "dump.json")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"gitpersist: error: {tmp_path / 'dump.json'}: item 0, "
                                  "volume 1: not a Volume cinderlib can load (ValueError")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".gitpersist"]


@pytest.mark.slow
@pytest.mark.cinderlib
def test_migrate_from_a_database_written_by_cinderlibs_db_plugin(run, tmp_path):
    database = tmp_path / "cinderlib.sqlite"
    url = f"sqlite:///{database}"
    made = cinderlib_run(SCENARIO, {"storage": "db", "connection": url})
    store = tmp_path / "store"
    assert run("--path", store, "init", "--git")[0] == 0
    done = gitpersist("--path", store, "migrate", "--from-db", url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == ("migrated 1 connections, 1 key_values, 1 snapshots, "
                           f"2 volumes from {url}\n")
    assert git(store, "log", "-1", "--format=%s") == f"migrate {url}: 5 records\n"
    assert git(store, "status", "--porcelain") == ""
    # the plugin's secret fields are declared in a commit of their own, no
    # commit suspects a crash (issue 16 item 3)
    assert git(store, "log", "--format=%s").splitlines()[1:] == [
        "gitpersist: declare secret fields connections.connection_info, "
        "volumes.provider_auth (kept on this host)", "gitpersist: new store"]

    from_db = cinderlib_run(READ_BACK, {"storage": "db", "connection": url})
    from_files = cinderlib_run(READ_BACK, {"storage": "file", "path": str(store)})
    assert sorted(from_db) == sorted(from_files) == sorted(
        [f"volume {made['volumes']['data']}", f"volume {made['volumes']['logs']}",
         f"snapshot {made['snapshot']}", f"connection {made['connection']}", "key k1"])
    assert from_files == from_db
    code, out, err = run("--path", store, "fsck")
    assert (code, out, err) == (0, "", f"{store}: clean\n")


@pytest.mark.parametrize("make, message", [
    (lambda path: None, "no database file {path}"),
    (lambda path: _sqlite(path, "CREATE TABLE inventory (host TEXT)"),
     "sqlite:///{path} is not a cinderlib database (it has no cinder schema: "
     "volumes and alembic_version tables)"),
    (lambda path: _sqlite(path, "CREATE TABLE volumes (id TEXT)"),
     "sqlite:///{path} is not a cinderlib database"),
])
@pytest.mark.cinderlib
def test_migrate_refuses_what_is_not_a_cinderlib_database(run, tmp_path, make, message):
    pytest.importorskip("cinderlib")        # without it, migrate says to install it
    database = tmp_path / "other.sqlite"
    make(database)
    before = database.read_bytes() if database.exists() else None
    assert run("--path", tmp_path / "s", "init")[0] == 0
    code, out, err = run("--path", tmp_path / "s", "migrate", "--from-db",
                         f"sqlite:///{database}")
    assert (code, out) == (1, "")
    assert err.startswith("gitpersist: error: " + message.format(path=database)), err
    assert (database.read_bytes() if database.exists() else None) == before


def test_cinderlib_commands_without_cinderlib_say_what_is_missing(run, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "cinderlib", None)     # import cinderlib fails
    (tmp_path / "dump.json").write_text(
        '[{"class": "Backend", "backend": {"volume_backend_name": "lvm"}, "volumes": []}]')
    assert run("--path", tmp_path / "s", "init")[0] == 0
    for argv, what in ((["import", tmp_path / "dump.json"], "importing cinderlib dumps"),
                       (["migrate", "--from-db", "sqlite:///x"], "migrate")):
        code, out, err = run("--path", tmp_path / "s", *argv)
        assert (code, out) == (1, "")
        assert err == f"gitpersist: error: {what} needs cinderlib: {INSTALL}\n"


@pytest.mark.parametrize("url", [
    "postgresql+nosuchdriver://admin:s3cret@db.example/cinder",
    "mysql+pymysql://admin:s3cret@db.example:33o6/cinder",    # a typo in the port
    "admin:s3cret@db.example",                                  # no scheme at all
])
@pytest.mark.cinderlib
def test_migrate_hides_passwords_in_messages(run, tmp_path, url):
    pytest.importorskip("cinderlib")
    assert run("--path", tmp_path / "s", "init")[0] == 0
    code, _, err = run("--path", tmp_path / "s", "migrate", "--from-db", url)
    assert code == 1 and "s3cret" not in err and "***" in err, err


def _sqlite(path: Path, statement: str) -> None:
    import sqlite3
    with sqlite3.connect(path) as connection:
        connection.execute(statement)
    connection.close()


# -- the examples ------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("generic_store.py", ["  find('hosts', family='debian')  (index)      ['db-1', 'web-1']",
                          "  get('hosts', 'web-1') after restore          "
                          "{'cores': 8, 'id': 'web-1', 'os': 'debian-12', 'rack': 'r1'}"]),
    ("ops_repo.py", ["the user's work is as it was:          True",
                     "the store's commits touch only metadata/: True",
                     "the staged change is still staged:      True"]),
])
def test_examples_run_and_leave_nothing_behind(tmp_path, name, expected):
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    for line in expected:
        assert line in done.stdout.splitlines(), done.stdout
    assert list(tmp_path.iterdir()) == []


def test_init_git_on_an_existing_store_starts_its_history(run, store_path):
    code, out, _ = run("--path", store_path, "init", "--git")
    assert code == 0
    assert out == (f"Reinitialized existing gitpersist store in {store_path} "
                   f"(history in git repository {store_path})\n")
    assert sorted(git(store_path, "ls-files").split()) == sorted([
        ".gitpersist/.gitignore", ".gitpersist/format.json",
        paths.record_path("volumes", "v1"), paths.record_path("volumes", "v2"),
        paths.record_path("snapshots", "s1")])
    assert [e["message"].splitlines()[0] for e in
            json.loads(run("--path", store_path, "log", "--json")[1])] == [
        "gitpersist init --git: the history starts with the store's files"]


def test_init_in_a_fresh_git_repository(run, tmp_path):
    git(tmp_path, "init", "-q")
    code, out, _ = run("--path", tmp_path, "init")
    # <store>/.git exists: the store keeps its history there
    assert out == (f"Initialized empty gitpersist store in {tmp_path} "
                   f"(history in git repository {tmp_path})\n")
    assert git(tmp_path, "status", "--porcelain") == ""


@pytest.mark.slow
def test_progress_bars_show_on_a_terminal_only(store_path, tmp_path):
    """fsck and import draw a bar on stderr when it is a terminal, and
    erase it; piped, stderr carries only the summary."""
    import pty
    export_file = tmp_path / "export.json"
    with Store(store_path, watch="off") as store:
        for n in range(50):
            store.put("things", f"t{n}", {"n": n})
    assert cli.main(["--path", str(store_path), "export", "-o", str(export_file)]) == 0
    assert cli.main(["--path", str(tmp_path / "copy"), "init"]) == 0
    for label, argv in (("fsck", ["--path", str(store_path), "fsck"]),
                        ("import", ["--path", str(tmp_path / "copy"), "import",
                                    str(export_file)])):
        master, slave = pty.openpty()
        done = subprocess.run([str(BIN / "gitpersist"), *argv], stdout=subprocess.PIPE,
                              stderr=slave, timeout=60)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
        os.close(master)
        assert done.returncode == 0
        assert f"{label} [".encode() in drawn and b"100%" in drawn, drawn
        piped = subprocess.run([str(BIN / "gitpersist"), *argv], capture_output=True,
                               timeout=60)
        assert b"[" not in piped.stderr and b"%" not in piped.stderr, piped.stderr
