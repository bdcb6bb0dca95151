"""The conflicts a sync decided: kept in the store's local state
(gitpersist.sync.ledger), listed by `gitpersist conflicts`, settled by
`gitpersist resolve` (gitpersist.settle); and the property over random
edits on two hosts that ties the field rule, the report, the listing and
resolve together."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from helpers import git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sync import META, clone, open_host, record_file, share

from gitpersist import StoreError
from gitpersist.cli import main
from gitpersist.layout import CONFLICTS_FILE

pytestmark = pytest.mark.usefixtures("no_git_identity")


@pytest.fixture
def origin(tmp_path):
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "remote.git"))
    return tmp_path / "remote.git"


def listed(host, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["--path", str(host / META), "conflicts", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def commits(host) -> int:
    return int(git(host, "rev-list", "--count", "HEAD"))


def conflicted(origin, **options):
    """Hosts a and b, a volume whose status both changed (b later) and
    whose size only a changed; b merged.  Returns (a, b, store_a, store_b,
    b's conflict)."""
    a, b = clone(origin, "a"), clone(origin, "b")
    store_a, store_b = open_host(a, **options), open_host(b, **options)
    share(store_a, store_b, {"v1": {"status": "creating", "size": 1, "auth": "s3cret"}})
    store_a.put("volumes", "v1", {"status": "error", "size": 2, "auth": "s3cret"})
    time.sleep(1.1)
    store_b.put("volumes", "v1", {"status": "available", "size": 1, "auth": "s3cret"})
    store_a.sync()
    [conflict] = store_b.sync().conflicts
    return a, b, store_a, store_b, conflict


def test_conflicts_are_listed_until_resolved_and_resolve_is_one_commit(origin, capsys):
    a, b, store_a, store_b, conflict = conflicted(origin)
    with store_a, store_b:
        [entry] = listed(b, capsys)
        assert (entry["type"], entry["id"], entry["field"], entry["base_value"],
                entry["local_value"], entry["remote_value"], entry["winner"]) == (
            "volumes", "v1", ["status"], "creating", "available", "error", "local")
        assert (entry["local_commit"], entry["remote_commit"], entry["base_commit"]) == (
            conflict.local_commit, conflict.remote_commit, conflict.base_commit)
        assert entry["merge_commit"] == git(b, "rev-parse", "HEAD").strip()
        assert listed(a, capsys) == []          # a fast-forwards next: nothing decided there
        assert main(["--path", str(b / META), "conflicts"]) == 0
        table = capsys.readouterr().out
        assert "status" in table and "creating" in table and "error" in table
        before = commits(b)
        assert main(["--path", str(b / META), "resolve", "volumes", "v1",
                     "--take", "theirs"]) == 0
        assert "1 conflict(s) settled" in capsys.readouterr().out
        assert commits(b) == before + 1
        assert store_b.get("volumes", "v1")["status"] == "error"
        assert store_b.get("volumes", "v1")["size"] == 2      # theirs: a's whole version
        assert listed(b, capsys) == []
        assert main(["--path", str(b / META), "resolve", "volumes", "v1",
                     "--take", "ours"]) == 1
        assert "no unsettled conflict" in capsys.readouterr().err
        assert commits(b) == before + 1


@pytest.mark.parametrize("take, expected", [("ours", {"status": "available", "size": 1}),
                                            ("base", {"status": "creating", "size": 1})])
def test_resolve_takes_ours_or_the_base(origin, capsys, take, expected):
    a, b, store_a, store_b, _ = conflicted(origin)
    with store_a, store_b:
        assert main(["--path", str(b / META), "resolve", "volumes", "v1", "--take", take]) == 0
        record = store_b.get("volumes", "v1")
        assert {k: record[k] for k in expected} == expected
        assert git(b, "log", "-1", "--format=%s").strip() == (
            f"volumes v1: conflict settled, took {take}")


def test_resolve_with_a_file(origin, capsys, tmp_path):
    a, b, store_a, store_b, _ = conflicted(origin)
    with store_a, store_b:
        chosen = tmp_path / "v1.json"
        chosen.write_text(json.dumps({"status": "maintenance", "size": 5}))
        before = commits(b)
        assert main(["--path", str(b / META), "resolve", "volumes", "v1",
                     "--file", str(chosen)]) == 0
        assert commits(b) == before + 1
        assert store_b.get("volumes", "v1") == {"id": "v1", "status": "maintenance",
                                                "size": 5}      # the file is the record
        chosen.write_text("[1]")
        assert main(["--path", str(a / META), "resolve", "volumes", "v1",
                     "--file", str(chosen)]) == 1
        assert f"{chosen}: a record is a JSON object" in capsys.readouterr().err


def test_secret_fields_never_reach_the_conflicts_file_or_git(origin, capsys):
    a, b, store_a, store_b, conflict = conflicted(
        origin, secret_fields={"volumes": ["auth"]}, file_mode=0o640)
    with store_a, store_b:
        path = b / META / CONFLICTS_FILE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600       # whatever file_mode says
        assert b"s3cret" not in path.read_bytes()
        assert git(b, "status", "--porcelain", "--ignored", "--",
                   f"{META}/{CONFLICTS_FILE}").startswith("!!")       # ignored: never committed
        for host in (a, b):
            assert "s3cret" not in git(host, "log", "-p", "--all")
        assert main(["--path", str(b / META), "resolve", "volumes", "v1",
                     "--take", "theirs"]) == 0
        assert store_b.get("volumes", "v1")["auth"] == "s3cret"      # kept as it is now
        store_b.sync()
        store_a.sync()
        for host in (a, b):
            assert "s3cret" not in git(host, "log", "-p", "--all")


def test_resolve_keeps_this_hosts_secret_over_one_a_remote_wrote_inline(origin, capsys):
    """Anyone who can push can put a declared secret field inline in a
    record: taking the remote's version settles the conflict with this
    host's own secret, never the pushed one."""
    secrets = {"volumes": ["auth"]}
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a, secret_fields=secrets) as store_a, \
            open_host(b, secret_fields=secrets) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating", "auth": "s3cret"}})
        store_b.put("volumes", "v1", {"status": "available", "auth": "s3cret"})
        store_a.sync()                                  # a has what b pushed at the share
        path = a / record_file("volumes", "v1")        # a plain git clone, pushing by hand
        doc = json.loads(path.read_text())
        path.write_text(json.dumps({**doc, "status": "error", "auth": "EVIL"}, indent=2,
                                   sort_keys=True) + "\n")
        git(a, "-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qam", "hostile")
        git(a, "push", "-q", "origin", "HEAD")
        assert store_b.sync().conflicts
        assert main(["--path", str(b / META), "resolve", "volumes", "v1",
                     "--take", "theirs"]) == 0
        assert store_b.get("volumes", "v1") == {"id": "v1", "status": "error", "auth": "s3cret"}


def test_a_field_path_from_a_remote_cannot_forge_lines_of_a_commit_message():
    from gitpersist.sync.report import Conflict, field_path
    forged = ("meta", "k\n\nSigned-off-by: Mallory <m@x>")
    assert "\n" not in field_path(forged)
    assert field_path(("metadata", "k")) == "metadata.k"
    assert field_path(("a.b", "")) == '"a.b".""'
    assert "\n" not in Conflict("volumes/ab/v1.json", "volumes", "v1", "local", "r1", "r2",
                                "c1", "c2", field=forged).where


def test_an_unreadable_conflicts_file_is_named_and_a_sync_still_succeeds(origin, capsys, caplog):
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        path = b / META / CONFLICTS_FILE
        path.write_text("not json")
        store_a.put("volumes", "v1", {"status": "error"})
        store_b.put("volumes", "v1", {"status": "available"})
        store_a.sync()
        assert len(store_b.sync().conflicts) == 1
        assert "not in the conflicts file" in caplog.text and str(path) in caplog.text
        assert main(["--path", str(b / META), "conflicts"]) == 1
        assert f"cannot read the conflicts file {path}" in capsys.readouterr().err
        with pytest.raises(StoreError, match="conflicts file"):
            from gitpersist import settle
            settle.resolve(store_b, "volumes", "v1", take="ours")


# -- the property: random edits on two hosts -----------------------------------------

IDS = ["r0", "r1", "r2"]
BASE = {id: {"status": "creating", "size": 1, "metadata": {"k0": "a", "k1": "a"},
             "tags": ["t"]} for id in IDS[:2]}          # r2 starts absent
edits = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(IDS), st.sampled_from(["status", "size", "tags"]),
              st.sampled_from(["x", "y", 2, ["u"]])),
    st.tuples(st.just("meta"), st.sampled_from(IDS), st.sampled_from(["k0", "k1", "k2"]),
              st.sampled_from(["b", "c", None])),      # None: the key removed
    st.tuples(st.just("delete"), st.sampled_from(IDS), st.none(), st.none()))


def apply(store, edit) -> None:
    kind, id, field, value = edit
    record = store.get("volumes", id)
    if kind == "delete":
        store.delete("volumes", id)
        return
    record = record or {"status": "new", "size": 0, "metadata": {}, "tags": []}
    if kind == "set":
        record[field] = value
    elif value is None:
        record["metadata"].pop(field, None)
    else:
        record["metadata"][field] = value
    store.put("volumes", id, record)


def leaves(record) -> dict:
    out = {(k,): v for k, v in record.items() if k != "metadata"}
    out.update({("metadata", k): v for k, v in record.get("metadata", {}).items()})
    return out


def expected_conflicts(base, mine, theirs) -> set:
    """(id, field) of every conflict the field rule must report."""
    found = set()
    for id in IDS:
        b, m, t = base.get(id), mine.get(id), theirs.get(id)
        if m == t or m == b or t == b:
            continue
        if m is None or t is None:
            found.add((id, ()))
            continue
        b_leaves, m_leaves, t_leaves = leaves(b or {}), leaves(m), leaves(t)
        for path in b_leaves.keys() | m_leaves.keys() | t_leaves.keys():
            values = [x.get(path, "-absent-") for x in (b_leaves, m_leaves, t_leaves)]
            if values[1] != values[2] and values[1] != values[0] and values[2] != values[0]:
                found.add((id, path))
    return found


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(edits, max_size=4), st.lists(edits, max_size=4), st.booleans(),
       st.sampled_from(["ours", "theirs", "base"]))
def test_random_edits_on_two_hosts_converge_and_every_conflict_is_listed_and_settled(
        tmp_path_factory, capsys, edits_a, edits_b, a_first, take):
    root = tmp_path_factory.mktemp("hosts")
    git(root, "init", "-q", "--bare", str(root / "remote.git"))
    origin = root / "remote.git"
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, BASE)
        base = {r["id"]: r for r in store_b.all("volumes")}
        for edit in edits_a:
            apply(store_a, edit)
        for edit in edits_b:
            apply(store_b, edit)
        finals = [{r["id"]: r for r in s.all("volumes")} for s in (store_a, store_b)]
        first, second = (store_a, store_b) if a_first else (store_b, store_a)
        merger = b if a_first else a
        first.sync()
        report = second.sync()
        first.sync()
        assert store_a.all("volumes") == store_b.all("volumes")          # converged
        assert git(a, "rev-parse", "HEAD^{tree}") == git(b, "rev-parse", "HEAD^{tree}")
        merged = {r["id"]: r for r in store_a.all("volumes")}
        mine, theirs = (finals[1], finals[0]) if a_first else (finals[0], finals[1])
        for side, other in ((mine, theirs), (theirs, mine)):        # one side's fields kept
            for id in IDS:
                if id not in merged or id not in side or id not in other:
                    continue
                for path, value in leaves(side[id]).items():
                    was = leaves(base[id]).get(path, "-absent-") if id in base else "-absent-"
                    if value != was and leaves(other[id]).get(path, "-absent-") == was:
                        assert leaves(merged[id]).get(path) == value, (id, path)
        reported = {(c.id, c.field) for c in report.conflicts}
        assert reported == expected_conflicts(base, mine, theirs)
        entries = listed(merger, capsys)
        assert {(e["id"], tuple(e["field"])) for e in entries} == reported
        merging_store = second
        for id in sorted({e["id"] for e in entries}):
            before = commits(merger)
            changed = main(["--path", str(merger / META), "resolve", "volumes", id,
                            "--take", take])
            assert changed == 0
            assert commits(merger) - before == (0 if "no commit" in capsys.readouterr().out
                                                else 1)
            assert merging_store.get("volumes", id) == (mine if take == "ours" else
                                                        theirs if take == "theirs" else
                                                        base).get(id)
        assert listed(merger, capsys) == []
