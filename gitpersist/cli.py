"""The `gitpersist` command: inspect, check, export, import, migrate and sync a
store, settle a sync's conflicts, watch its changes.

``gitpersist [--path PATH] COMMAND ...``; PATH defaults to ``$GITPERSIST_PATH``,
else the current folder; the store is the one holding PATH, found from any
folder inside it as git finds a repository (``init`` refuses to make a
store inside one).  Commands that only read never create anything and
refuse a folder that holds no store; they open it read-only (no lock taken,
so they work on a read-only mount: ``tests/test_read_only.py``).  Commands
that write need a store made by ``gitpersist init`` first.

Git history: the command finds out whether a store keeps history in git
(`locate.uses_git`: the store root is a git work tree, or its format file is
tracked by the repository around it) and opens it accordingly, so writes
made here (``import``, ``migrate``, ``restore``) are committed exactly when
the applications' writes are.  Stores are opened with ``watch="off"``: one
command is one short-lived process.

Exit status: 0 on success, 1 on an error gitpersist reports (the message
starts with ``gitpersist: error:``) or when ``fsck`` finds problems, 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import difflib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from . import __version__, encoding, fsck, interrupt, options, output, paths, query, transfer
from .errors import ConfigError, GitpersistError, StoreError
from .locate import find_store, is_store, uses_git
from .progress import Progress
from .layout import META_DIR
from .messages import printable
from .store import Store

if TYPE_CHECKING:
    from .history import History

ENV_PATH = "GITPERSIST_PATH"
# Columns `ls` shows first when records have them (cinderlib's and common
# names), before filling up with other plain fields.
PREFERRED_COLUMNS = ("display_name", "name", "value", "volume_id", "size", "volume_size",
                     "status", "attach_status", "attach_mode", "host", "attached_host")
MAX_COLUMNS = 5
TYPE_HELP = "volumes, snapshots, connections, key_values, or any type the store holds"
MAX_CELL = 40

LOG = logging.getLogger("gitpersist")


class CommandError(GitpersistError):
    """What a command cannot do as asked (a missing record, a bad file)."""


# -- arguments ---------------------------------------------------------------

def _type_name(text: str) -> str:
    if not paths.is_type(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a type name (1-64 characters of a-z, 0-9, '_' and '-')")
    return text


_FILTER = re.compile(r"(?P<field>[^<>!=]+?)\s*(?P<op><=|>=|!=|<|>|=)(?P<value>.*)", re.S)


def _filter(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` (or ``!=``, ``<``, ``<=``, ``>``, ``>=``) as a key
    and value of `Store.find`'s mapping (``"size >="``: 10)."""
    match = _FILTER.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use FIELD=VALUE (or FIELD!=VALUE, "
                                         "FIELD<VALUE, FIELD<=VALUE, FIELD>VALUE, "
                                         "FIELD>=VALUE)")
    key = match["field"] if match["op"] == "=" else f"{match['field']} {match['op']}"
    try:
        return key, json.loads(match["value"])
    except ValueError:
        return key, match["value"]


def _count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return number


class _Parser(argparse.ArgumentParser):
    """argparse, with git's "did you mean" for a mistyped command."""

    def error(self, message: str) -> NoReturn:
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            message += _did_you_mean(match[1], re.findall(r"'([^']*)'", match[2]))
        super().error(message)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gitpersist",
        description="Inspect and manage a gitpersist metadata store.",
        epilog=f"The store is --path, else ${ENV_PATH}, else the current folder.")
    parser.add_argument("--version", action="version", version=f"gitpersist {__version__}")
    parser.add_argument("--path", metavar="PATH", help="the store's folder")
    parser.add_argument("--no-pager", action="store_true",
                        help=f"never page long output (else ${output.ENV_PAGER}, $PAGER "
                             "or less, on a terminal)")
    # --path also after the command; SUPPRESS keeps the global one otherwise.
    common = _Parser(add_help=False)
    common.add_argument("--path", metavar="PATH", default=argparse.SUPPRESS,
                        help="the store's folder")
    common.add_argument("--no-pager", action="store_true", default=argparse.SUPPRESS,
                        help="never page long output")
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    formats = _Parser(add_help=False)
    formats.add_argument("--format", choices=output.FORMATS, default=None,
                         help="table (default), json, ndjson (a record a line) or csv")
    formats.add_argument("--json", action="store_const", const="json", dest="format",
                         help="the same as --format json")
    formats.set_defaults(paged=True)
    quiet = _Parser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar (it shows only on a terminal anyway)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str,
                *parents: _Parser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help,
                                  parents=[common, *parents])
        sub.set_defaults(run=globals()[f"cmd_{name}"])
        return sub

    sub = command("init", "create a store (in an empty or new folder)")
    sub.add_argument("--git", action="store_true",
                     help="keep history in git (runs `git init` unless a repository "
                          "already holds the folder)")

    sub = command("ls", "list the records of a type", formats)
    sub.add_argument("type", metavar="TYPE", type=_type_name, help=TYPE_HELP)
    sub.add_argument("--where", metavar="FIELD=VALUE", type=_filter, action="append",
                     default=[], help="only records whose FIELD equals VALUE (JSON when "
                     "it parses, so size=1 is a number; else a string), or compares "
                     "with it: FIELD!=, <, <=, >, >=VALUE; FIELD may be a.b for a "
                     "nested field; repeatable")
    sub.add_argument("--columns", metavar="FIELD,...",
                     help="the fields to show after the id, a.b for a nested one "
                          "(default: a few plain ones)")
    sub.add_argument("--limit", metavar="N", type=_count, help="at most N records")

    command("types", "list the types of the store and how many records each holds",
            formats)

    sub = command("show", "print one record", as_json)
    sub.set_defaults(paged=True)
    sub.add_argument("type", metavar="TYPE", type=_type_name, help=TYPE_HELP)
    sub.add_argument("id", metavar="ID")
    sub.add_argument("--rev", metavar="REV", help="as it was at git revision REV")

    sub = command("log", "list the commits that changed the store, a type or a record",
                  formats)
    sub.add_argument("type", metavar="TYPE", type=_type_name, nargs="?", help=TYPE_HELP)
    sub.add_argument("id", metavar="ID", nargs="?")
    sub.add_argument("-n", "--limit", metavar="N", type=_count, dest="limit",
                     help="at most N commits")
    sub.add_argument("--date", choices=output.DATES, default="default",
                     help="dates in the commit's zone (default), this machine's (local), "
                          "ISO 8601 (iso) or as '3 hours ago' (relative), as git log")

    sub = command("diff", "show how a record changed between two revisions")
    sub.set_defaults(paged=True)
    sub.add_argument("type", metavar="TYPE", type=_type_name, help=TYPE_HELP)
    sub.add_argument("id", metavar="ID")
    sub.add_argument("rev1", metavar="REV1")
    sub.add_argument("rev2", metavar="REV2", nargs="?",
                     help="default: the record as it is now")

    sub = command("restore", "make a record what it was at a git revision")
    sub.add_argument("type", metavar="TYPE", type=_type_name, help=TYPE_HELP)
    sub.add_argument("id", metavar="ID")
    sub.add_argument("--rev", metavar="REV", required=True)

    sub = command("sync", "pull other hosts' changes from a git remote and push the "
                  "store's own (see gitpersist.sync)", as_json)
    sub.add_argument("--remote", metavar="NAME", default="origin",
                     help="a git remote of the store's repository (default: origin)")

    sub = command("fsck", "check the store; exit 1 if anything is wrong", as_json, quiet)
    sub.add_argument("--repair", action="store_true",
                     help="fix what is safe: stale temp files, empty folders, loose "
                          "permissions, uncommitted changes")
    for flag, default in (("--file-mode", "0600"), ("--dir-mode", "0700")):
        sub.add_argument(flag, metavar="MODE", type=_mode_argument(flag), default=default,
                         help=f"the store's {flag[2:-5]} mode, if not {default} "
                              "(its file_mode/dir_mode option)")

    sub = command("export", "print every record as one JSON document")
    sub.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")

    sub = command("import", "store the records of an export or of a cinderlib dump", quiet)
    sub.add_argument("file", metavar="FILE", help="a `gitpersist export` document, or "
                     "cinderlib's dumps() output; - reads stdin")

    sub = command("migrate", "copy everything from a cinderlib database into the store",
                  quiet)
    sub.add_argument("--from-db", metavar="URL", required=True,
                     help="the SQLAlchemy URL cinderlib's db plugin used, e.g. "
                          "sqlite:////var/lib/cinderlib/cinderlib.sqlite")
    _add_conflict_commands(command, as_json)
    _add_watch_command(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    handler, propagate = _log_to_stderr(), LOG.propagate
    LOG.propagate = False
    try:
        with warnings.catch_warnings():
            # eventlet >= 0.40 warns on import that it is deprecated; cinder
            # 23 imports it, and our users can do nothing about it.
            warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
            with interrupt.terminating(), \
                    output.paged(getattr(args, "paged", False) and not args.no_pager):
                return args.run(args) or 0
    except GitpersistError as exc:
        print(f"gitpersist: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"gitpersist: interrupted ({transfer.why_stopped(exc)})", file=sys.stderr)
        return exc.exit_status if isinstance(exc, interrupt.Interrupted) else 130
    except BrokenPipeError:      # `gitpersist ls volumes | head`
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        LOG.removeHandler(handler)
        LOG.propagate = propagate


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"gitpersist: {record.levelname.lower()}: {record.getMessage()}"


def _log_to_stderr() -> logging.Handler:
    """Show the library's warnings (a skipped corrupt record) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.setLevel(logging.WARNING)
    LOG.addHandler(handler)
    return handler


# -- opening the store -------------------------------------------------------

def _start(args: argparse.Namespace) -> str:
    return os.path.abspath(args.path or os.environ.get(ENV_PATH) or os.curdir)


def _root(args: argparse.Namespace) -> str:
    """The store the command works on: the one holding the folder given
    (--path, $GITPERSIST_PATH, the current folder), found upward as git
    finds a repository; the folder itself if none holds it (the command
    then says there is no store there)."""
    start = _start(args)
    return find_store(start) or start


def _require_store(root: str) -> None:
    if not is_store(root):
        raise CommandError(f"no gitpersist store at {root}; run `gitpersist init` first")


@contextlib.contextmanager
def _open(args: argparse.Namespace, *, write: bool = False,
          secret_fields: dict[str, Any] | None = None) -> Iterator[Store]:
    """The store at --path, which must exist.  Writers get git history when
    the store keeps it (see the module doc); readers never write, so they
    open it without, read-only (no lock, and fine on a read-only mount)."""
    root = _root(args)
    _require_store(root)
    with Store(root, git=write and uses_git(root), watch="off", read_only=not write,
               secret_fields=secret_fields) as store:
        yield store


@contextlib.contextmanager
def _open_history(args: argparse.Namespace) -> Iterator[History]:
    """The store's git history, read-only: unlike ``Store(git=True)``,
    opening it does not commit files that differ from HEAD."""
    root = _root(args)
    _require_store(root)
    if not uses_git(root):
        raise CommandError(f"the store at {root} keeps no git history "
                           "(start one with `gitpersist init --git`)")
    from .history import History
    history = History(root, lock=_no_writes, author=None, commit_mode="sync",
                      commit_delay=0.0, fsync=False, create=False)
    try:
        yield history
    finally:
        history.close()


def _no_writes() -> contextlib.AbstractContextManager[None]:
    # The history only takes the store lock to commit, which a read-only
    # command never asks it to do.
    raise StoreError("the history was opened read-only")


# -- types and ids -----------------------------------------------------------

def _check_type(store: Store, type: str) -> None:
    """An unknown type is an error (exit 1), with "did you mean"."""
    types = store.types()
    if type not in types:
        raise CommandError(f"no type {type!r} in {store.root} (it has "
                           f"{', '.join(types) or 'none'}){_did_you_mean(type, types)}")


def _resolve_id(args: argparse.Namespace) -> None:
    """`args.id` as given if that record exists now, else the one id of
    `args.type` it is a prefix of, as git takes an abbreviated commit; an
    ambiguous prefix is an error naming the candidates.  No match: as
    given (a deleted record still has its history)."""
    root = _root(args)
    _require_store(root)
    relpath = paths.record_path(args.type, args.id)
    if os.path.lexists(os.path.join(root, *relpath.split("/"))):
        return
    with Store(root, watch="off") as store:
        if args.type not in store.types():
            return
        matches = [record["id"] for record in store.all(args.type)
                   if record["id"].startswith(args.id)]
    if len(matches) > 1:
        shown = ", ".join(printable(id) for id in matches[:5])
        raise CommandError(f"{args.type} id prefix {args.id!r} is ambiguous: {shown}"
                           + (f" and {len(matches) - 5} more" if len(matches) > 5 else ""))
    if matches:
        args.id = matches[0]


# -- output ------------------------------------------------------------------

def _print_json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _cell(value: Any, limit: int | None = MAX_CELL) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value).decode()
    text = printable(text)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def _columns(records: list[dict[str, Any]]) -> list[str]:
    """A few fields worth a column: known names first, then plain fields
    every record has."""
    present = set().union(*(record.keys() for record in records)) - {"id"}
    chosen = [name for name in PREFERRED_COLUMNS if name in present][:MAX_COLUMNS]
    plain = sorted(name for name in present if name not in chosen and all(
        isinstance(record.get(name), str | int | float | bool) for record in records))
    return chosen + plain[:MAX_COLUMNS - len(chosen)]


# -- commands ----------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    root = _start(args)
    existed = is_store(root)
    around = None if existed else find_store(root)
    if around is not None:
        raise CommandError(f"{root} is inside the gitpersist store at {around}; a store "
                           "inside a store would be read as one of its types (try --path "
                           "outside it)")
    if not existed and os.path.isdir(root) and any(
            entry.name != ".git" for entry in os.scandir(root)):
        raise CommandError(f"{root} is not empty; a store needs a folder of its own "
                           f"(try --path {os.path.join(root, 'metadata')})")
    # With git, the history commits the format file (and runs `git init` in
    # the folder unless a repository already holds it); an existing store's
    # files get a commit saying history starts here, not suspecting a crash.
    if existed and args.git and not uses_git(root):      # (History runs `git init`)
        fsck.commit_changed(root, "gitpersist init --git: the history starts with "
                                  "the store's files")
    with Store(root, git=args.git or uses_git(root), watch="off") as store:
        history = store.history
        where = f" (history in git repository {history.worktree})" if history else ""
    what = "Reinitialized existing" if existed else "Initialized empty"
    print(f"{what} gitpersist store in {root}{where}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with _open(args) as store:
        _check_type(store, args.type)
        records = store.find(args.type, dict(args.where))[:args.limit]
    columns = (_columns(records) if args.columns is None
               else [name for name in args.columns.split(",") if name and name != "id"])
    limit = None if args.format == "csv" else MAX_CELL       # csv: whole values
    output.emit(args.format or "table", records,
                ["ID" if limit else "id", *(printable(name.upper() if limit else name)
                                            for name in columns)],
                [[_cell(record["id"], None),
                  *(_cell(query.value_of(record, name), limit) for name in columns)]
                 for record in records])
    return 0


def cmd_types(args: argparse.Namespace) -> int:
    with _open(args) as store:
        # Every record is read to count it (about 50 us each): what a
        # listing costs, and what tells a corrupt file from a record.
        counts = [(type, len(store.all(type))) for type in store.types()]
    output.emit(args.format or "table", [{"type": type, "records": n} for type, n in counts],
                ["TYPE", "RECORDS"], [[type, str(n)] for type, n in counts])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _resolve_id(args)
    if args.rev is None:
        with _open(args) as store:
            record = store.get(args.type, args.id)
        if record is None:
            raise CommandError(f"no record {args.type} {args.id!r} in {store.root}")
    else:
        relpath = paths.record_path(args.type, args.id)
        with _open_history(args) as history:
            data = history.read(relpath, args.rev)
        record = None if data is None else encoding.loads(data, f"{args.rev}:{relpath}")
        if record is None:
            raise CommandError(f"no record {args.type} {args.id!r} at revision {args.rev}")
    if args.json:
        _print_json(record)
    else:
        output.table(["FIELD", "VALUE"], [[_cell(name, None), _cell(record[name], None)]
                                          for name in ["id", *sorted(record.keys() - {"id"})]])
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    if args.id is not None:
        _resolve_id(args)
    relpath = (paths.record_path(args.type, args.id) if args.id is not None
               else args.type or ".")
    with _open_history(args) as history:
        entries = [{"commit": version.commit, "time": version.time.isoformat(),
                    "author": version.author, "message": version.message}
                   for version in history.versions(relpath, args.limit)]
    if not entries and relpath != ".":      # a mistyped type or id: exit 1
        with _open(args) as store:
            types = store.types()
        hint = "" if args.type in types else _did_you_mean(args.type, types)
        raise CommandError(f"no commit changed {relpath}{hint}")
    output.emit(args.format or "table", entries, ["COMMIT", "DATE", "AUTHOR", "MESSAGE"], [
        [entry["commit"][:10],
         output.date(datetime.datetime.fromisoformat(entry["time"]), args.date),
         _cell(entry["author"].split(" <")[0], 24),
         _cell((entry["message"].splitlines() or [""])[0], None)]
        for entry in entries])
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    _resolve_id(args)
    relpath = paths.record_path(args.type, args.id)
    with _open_history(args) as history:
        if history.read(relpath, args.rev1) is None and (
                history.read(relpath, args.rev2) is None if args.rev2 is not None
                else not os.path.lexists(os.path.join(_root(args), *relpath.split("/")))):
            raise CommandError(f"no record {args.type} {args.id!r} at {args.rev1} nor "
                               f"{'at ' + args.rev2 if args.rev2 else 'now'}")
        sys.stdout.write(history.diff(relpath, args.rev1, args.rev2))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    _resolve_id(args)
    root = _root(args)
    _require_store(root)
    if not uses_git(root):
        raise CommandError(f"the store at {root} keeps no git history to restore from")
    from .cinder import schema     # commit messages as the plugin writes them
    with Store(root, git=True, watch="off", describe=schema.describe) as store:
        before = store.revision(args.type, args.id)
        revision = store.restore(args.type, args.id, args.rev)
    subject = f"{args.type} {args.id}"
    if revision is None:
        print(f"{subject}: absent at {args.rev}, " + ("deleted" if before else "still absent"))
    elif revision == before:
        print(f"{subject}: already as at {args.rev}")
    else:
        print(f"{subject}: restored from {args.rev} (revision {revision[:10]})")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    root = _root(args)
    _require_store(root)
    if not uses_git(root):
        raise CommandError(f"the store at {root} keeps no git history to sync "
                           "(start one with `gitpersist init --git`)")
    with Store(root, git=True, watch="off", remote=args.remote) as store:
        report = store.sync()       # conflicts are logged as warnings (stderr)
    if args.json:
        _print_json(dataclasses.asdict(report))
    else:
        print(report.summary())
    return 0


def _mode_argument(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return options.mode(flag, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def cmd_fsck(args: argparse.Namespace) -> int:
    root = _root(args)
    if not os.path.isdir(os.path.join(root, META_DIR)):
        _require_store(root)
    from .cinder import schema     # cinderlib's references (plain data, no cinderlib)
    with Progress("fsck", quiet=args.quiet) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.advance(done - bar.done)
        problems = fsck.check(root, repair=args.repair, progress=progress,
                              file_mode=args.file_mode, dir_mode=args.dir_mode,
                              rules=schema.RULES)
    if args.json:
        _print_json([{"kind": p.kind, "path": p.path, "message": p.message,
                      "repairable": p.repairable, "repaired": p.repaired, "note": p.note}
                     for p in problems])
    else:
        for problem in problems:
            label = "note" if problem.note else "repaired" if problem.repaired else "error"
            print(f"{label}: {problem.kind}: {printable(problem.path)}: "
                  f"{printable(problem.message)}")
        left = [p for p in problems if not p.note and not p.repaired]
        repaired = sum(p.repaired and not p.note for p in problems)
        summary = f"{len(left)} problem{'s' * (len(left) != 1)}"
        if args.repair:
            summary += f" left, {repaired} repaired"
        print(f"{root}: {summary}" if left or repaired else f"{root}: clean",
              file=sys.stderr)
    return 0 if fsck.clean(problems) else 1


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        document, skipped = transfer.export(store)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    if args.output is None:
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
        else:               # a text-only stream (a test's capture)
            sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        transfer.write_file(args.output, data)
        count = sum(len(records) for records in document["types"].values())
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    if skipped:
        raise CommandError(f"{skipped} corrupt record file(s) left out of the export; "
                           "run `gitpersist fsck`")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    root = _root(args)
    _require_store(root)
    document = transfer.read_file(args.file)
    name = os.path.basename(args.file) if args.file != "-" else "stdin"
    if transfer.is_export(document):
        writes = transfer.read_export(document, args.file)
        # What the exported store kept local stays local here too.
        secret_fields = transfer.secret_fields_of(document, args.file)
        from .cinder import schema     # cinderlib's references (plain data)
        with _open(args, write=True, secret_fields=secret_fields) as store, \
                _long_write("import", args, store.history is not None) as (bar, stop):
            counts = transfer.import_export(store, writes, source=args.file, progress=bar,
                                            references=schema.REFERENCES,
                                            checkpoint=stop.check)
    else:
        from .cinder import migrate     # cinderlib loads only when needed
        if not migrate.is_dump(document):
            raise transfer.TransferError(f"{args.file}: neither a `gitpersist export` "
                                         "document nor cinderlib dumps() output")
        _need_cinderlib("importing cinderlib dumps")
        with migrate.file_plugin(root, git=uses_git(root)) as plugin, \
                migrate.cinderlib_persistence({"storage": plugin}):
            objects = migrate.load_cinderlib(document, args.file)
            with _long_write("import", args, plugin.store.history is not None) as (bar, stop):
                counts = migrate.write_objects(plugin, objects, f"import {name}",
                                               progress=bar, checkpoint=stop.check)
    print(f"imported {transfer.describe_counts(counts)} from {args.file}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    root = _root(args)
    _require_store(root)
    _need_cinderlib("migrate")
    from .cinder import migrate
    shown = migrate.safe_url(args.from_db)
    with Progress("migrate", quiet=args.quiet) as bar:
        with bar.phase(f"reading {shown}"):
            objects = migrate.from_database(args.from_db)
        with migrate.file_plugin(root, git=uses_git(root)) as plugin, \
                _long_write("migrate", args, plugin.store.history is not None,
                            bar) as (bar, stop):
            counts = migrate.write_objects(plugin, objects, f"migrate {shown}",
                                           progress=bar, checkpoint=stop.check)
    print(f"migrated {transfer.describe_counts(counts)} from {shown}")
    return 0


@contextlib.contextmanager
def _long_write(label: str, args: argparse.Namespace, git: bool, shown: Progress | None = None
                ) -> Iterator[tuple[Progress, interrupt.Deferred]]:
    """A progress bar (`shown`, else a new one), and SIGINT/SIGTERM held
    until the next record is whole (`interrupt.deferred`); cut short,
    stderr says how far it got, as the commit does."""
    with shown or Progress(label, quiet=args.quiet) as bar:
        try:
            with interrupt.deferred() as stop:
                yield bar, stop
        except BaseException as exc:
            if bar.total:
                kept = " and committed" if git and bar.done else ""
                print(f"gitpersist: {label} interrupted: {bar.done} of {bar.total} records "
                      f"written{kept} ({transfer.why_stopped(exc)}); run it again to "
                      "finish (records already there are left as they are)", file=sys.stderr)
            raise


def _need_cinderlib(what: str) -> None:
    try:
        import cinderlib  # noqa: F401
    except ImportError:
        from .cinder import INSTALL
        raise CommandError(f"{what} needs cinderlib: {INSTALL}") from None


if __name__ == "__main__":
    sys.exit(main())


# -- conflicts: what syncs decided, and settling them --------------------------

def _add_conflict_commands(command: Callable[..., argparse.ArgumentParser],
                           as_json: argparse.ArgumentParser) -> None:
    command("conflicts", "list the conflicts syncs decided that nobody settled yet "
            "(kept in .gitpersist/conflicts.json, not in git)", as_json)
    sub = command("resolve", "settle a record's conflicts: write the version chosen as "
                  "one new commit")
    sub.add_argument("type", metavar="TYPE", type=_type_name, help=TYPE_HELP)
    sub.add_argument("id", metavar="ID")
    how = sub.add_mutually_exclusive_group(required=True)
    how.add_argument("--take", choices=("ours", "theirs", "base"),
                     help="the record as this host's side of the merge had it (ours), as "
                          "the remote's had it (theirs), or as the merge base had it")
    how.add_argument("--file", metavar="F", help="a JSON document to store instead; - "
                     "reads stdin")


def cmd_conflicts(args: argparse.Namespace) -> int:
    from .sync.ledger import Ledger
    from .sync.report import field_path
    root = _root(args)
    _require_store(root)
    entries = Ledger(root).unsettled()
    if args.json:
        _print_json(entries)
        return 0
    if entries:
        output.table(["TYPE", "ID", "FIELD", "BASE", "LOCAL", "REMOTE", "KEPT", "COMMITS"], [
            [_cell(e["type"], None), _cell(e["id"], None),
             _cell(field_path(tuple(e["field"])) or "(record)", None),
             *(_cell(e[f"{side}_value"]) for side in ("base", "local", "remote")),
             e["winner"], f"{e['local_commit'][:10]} {e['remote_commit'][:10]}"]
            for e in entries])
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from . import settle
    root = _root(args)
    _require_store(root)
    document = None if args.file is None else _read_document(args.file)
    with Store(root, git=True, watch="off") as store:
        done = settle.resolve(store, args.type, args.id, take=args.take, document=document)
    what = ("deleted" if done.revision is None else f"revision {done.revision[:10]}")
    change = "one commit" if done.changed else "already so, no commit"
    print(f"{args.type} {args.id}: took {done.took} ({what}, {change}); "
          f"{len(done.conflicts)} conflict(s) settled")
    return 0


def _read_document(name: str) -> dict[str, Any]:
    """The JSON object in file `name` (- : stdin), or a `CommandError`
    naming it."""
    try:
        if name == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(name, "rb") as file:
                data = file.read()
        document = orjson.loads(data)
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{name} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CommandError(f"{name}: a record is a JSON object, not "
                           f"{type(document).__name__}")
    return document


# -- watch: the change feed ----------------------------------------------------

def _add_watch_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command("watch", "print the store's changes as they happen, until interrupted "
                  "(writes of every process, syncs, reported hand edits)")
    sub.add_argument("type", metavar="TYPE", type=_type_name, nargs="?",
                     help="only changes of this type")
    sub.add_argument("--json", action="store_true",
                     help="one JSON object per line (NDJSON): type, id, operation, "
                          "revision, token")
    sub.add_argument("--interval", metavar="SECONDS", type=float, default=0.2,
                     help="how often to look for changes (default: 0.2)")


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from .changefeed import ChangeFeed
    from .errors import ChangesExpired
    from .layout import CHANGES_FILE
    root = _root(args)
    _require_store(root)
    feed = ChangeFeed(os.path.join(root, *CHANGES_FILE.split("/")))
    token = feed.since().token
    print(f"gitpersist: watching {root} from {token}", file=sys.stderr, flush=True)
    while True:
        try:
            batch = feed.since(token)
        except ChangesExpired as exc:
            LOG.warning("%s (going on from the new log's first change)", exc)
            token = feed.first()
            continue
        for change in batch:
            if args.type is None or change.type == args.type:
                if args.json:
                    print(orjson.dumps(dataclasses.asdict(change)).decode())
                else:
                    print(f"{change.operation:6} {change.type} {change.id} "
                          f"{(change.revision or '-')[:10]}")
        sys.stdout.flush()
        token = batch.token
        time.sleep(args.interval)
