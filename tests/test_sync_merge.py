"""gitpersist.sync.merge: the merge rule of store files, without git.

`plan` gets the two sides' diffs against the merge base and a stand-in for
"the last commit of a side that changed a path"; the resolvers get fake
blob stores."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitpersist import formatfile, paths
from gitpersist.layout import FORMAT_FILE
from gitpersist.sync.merge import (LOCAL, REMOTE, Both, FormatUnion, LaterChangeWins,
                                   Resolution, plan)

PREFIX = "meta/"
RECORDS = [PREFIX + paths.record_path("volumes", f"v{n}") for n in range(5)]
OTHERS = ["README", PREFIX + "notes.txt"]       # outside the store / not a store file
FILE, EXEC = 0o100644, 0o100755


def diff(base: dict, side: dict) -> dict:
    return {path: (base.get(path), side.get(path))
            for path in base.keys() | side.keys() if base.get(path) != side.get(path)}


def facts(local: dict, remote: dict):
    """last_change over two hosts' facts: path -> (commit, time)."""
    def last_change(side: str, path: str) -> tuple[str, int]:
        return (local if side == LOCAL else remote)[path]
    return last_change


def merged(tree: dict, decided: dict) -> dict:
    out = {**tree, **decided}
    return {path: entry for path, entry in out.items() if entry is not None}


entries = st.one_of(st.none(), st.tuples(st.sampled_from([FILE, EXEC]),
                                          st.sampled_from(["1a", "2b", "3c", "4d"])))


@st.composite
def histories(draw):
    """A base tree, two hosts' trees made from it, and each host's commit
    facts for the paths it changed (times from a small range: ties)."""
    every = RECORDS + OTHERS
    base = {p: e for p in every if (e := draw(entries)) is not None}
    hosts = []
    for name in ("a", "b"):
        tree = dict(base)
        for path in every:
            if draw(st.booleans()):
                entry = draw(entries)
                if entry is None:
                    tree.pop(path, None)
                else:
                    tree[path] = entry
        changed = diff(base, tree)
        hosts.append((tree, {path: (f"{name}-{i:02d}" + "0" * 36, draw(st.integers(0, 2)))
                             for i, path in enumerate(sorted(changed))}))
    return base, hosts[0], hosts[1]


def plan_on(base, me, other):
    (mine, my_facts), (theirs, their_facts) = me, other
    return plan(diff(base, mine), diff(base, theirs), prefix=PREFIX,
                last_change=facts(my_facts, their_facts), resolvers=[LaterChangeWins()])


@settings(max_examples=300, deadline=None)
@given(histories())
def test_both_hosts_reach_the_same_files_whichever_merges(history):
    base, a, b = history
    on_a, on_b = plan_on(base, a, b), plan_on(base, b, a)
    assert on_a.decided == on_b.decided
    store_a = {p: e for p, e in merged(a[0], on_a.decided).items() if p in RECORDS}
    store_b = {p: e for p, e in merged(b[0], on_b.decided).items() if p in RECORDS}
    assert store_a == store_b
    mirror = {LOCAL: REMOTE, REMOTE: LOCAL}
    assert [(c.relpath, mirror[c.winner], c.winner_revision, c.loser_revision,
             c.winner_commit, c.loser_commit) for c in on_a.conflicts] == [
        (c.relpath, c.winner, c.winner_revision, c.loser_revision, c.winner_commit,
         c.loser_commit) for c in on_b.conflicts]


@settings(max_examples=300, deadline=None)
@given(histories())
def test_one_sided_changes_are_taken_and_both_sided_ones_go_to_the_later(history):
    base, (mine, my_facts), (theirs, their_facts) = history
    ours, yours = diff(base, mine), diff(base, theirs)
    result = plan_on(base, (mine, my_facts), (theirs, their_facts))
    assert set(result.decided) == {p for p in ours.keys() | yours.keys() if p in RECORDS}
    conflicted = {c.relpath: c for c in result.conflicts}
    for path, entry in result.decided.items():
        relpath = path[len(PREFIX):]
        assert result.local[path] == mine.get(path)
        if path not in yours or mine.get(path) == theirs.get(path):
            assert entry == mine.get(path) and relpath not in conflicted
        elif path not in ours:
            assert entry == theirs.get(path) and relpath not in conflicted
        else:
            conflict = conflicted[relpath]
            won, lost = (my_facts, their_facts) if conflict.winner == LOCAL else (
                their_facts, my_facts)
            assert won[path][1] >= lost[path][1]                # the later, or a tie
            assert (conflict.winner_commit, conflict.loser_commit) == (won[path][0],
                                                                       lost[path][0])
            assert entry == (mine if conflict.winner == LOCAL else theirs).get(path)
    assert result.changes == {p: e for p, e in result.decided.items()
                              if e != mine.get(p)}


def test_only_files_changed_on_both_sides_ask_for_commit_facts():
    asked = []

    def last_change(side, path):
        asked.append((side, path))
        return ("c" * 40, 1)
    one, two, three = RECORDS[:3]
    ours = {one: (None, (FILE, "1a")), two: ((FILE, "1a"), (FILE, "2b"))}
    theirs = {two: ((FILE, "1a"), (FILE, "3c")), three: (None, (FILE, "4d")),
              "README": (None, (FILE, "1a"))}
    result = plan(ours, theirs, prefix=PREFIX, last_change=last_change,
                  resolvers=[LaterChangeWins()])
    assert asked == [(LOCAL, two), (REMOTE, two)]
    assert result.decided == {one: (FILE, "1a"), two: (FILE, "3c"), three: (FILE, "4d")}
    assert result.changes == {two: (FILE, "3c"), three: (FILE, "4d")}


# -- LaterChangeWins ------------------------------------------------------------------

def both(local, remote, local_time, remote_time, path=RECORDS[0]):
    times = {LOCAL: ("l" * 40, local_time), REMOTE: ("r" * 40, remote_time)}
    return Both(path, path[len(PREFIX):], (FILE, "0f"), local, remote,
                lambda side, _: times[side])


@pytest.mark.parametrize("local, remote, local_time, remote_time, winner", [
    ((FILE, "1a"), (FILE, "2b"), 11, 10, LOCAL),          # later local
    ((FILE, "2b"), (FILE, "1a"), 10, 11, REMOTE),         # later remote
    ((FILE, "1a"), (FILE, "2b"), 10, 10, REMOTE),         # tie: larger blob id
    ((FILE, "2b"), (FILE, "1a"), 10, 10, LOCAL),
    (None, (FILE, "1a"), 10, 10, REMOTE),                 # tie: the edit beats a deletion
    ((FILE, "1a"), None, 10, 10, LOCAL),
    (None, (FILE, "1a"), 11, 10, LOCAL),                  # a later deletion wins
    ((FILE, "1a"), (EXEC, "1a"), 10, 10, REMOTE),         # same blob: the mode decides
])
def test_the_later_change_wins_ties_to_the_larger_blob(local, remote, local_time,
                                                       remote_time, winner):
    resolution = LaterChangeWins().resolve(both(local, remote, local_time, remote_time))
    kept, lost = (local, remote) if winner == LOCAL else (remote, local)
    assert resolution.entry == kept
    conflict = resolution.conflict
    assert (conflict.winner, conflict.winner_revision, conflict.loser_revision) == (
        winner, kept[1] if kept else None, lost[1] if lost else None)
    assert (conflict.winner_commit[0], conflict.loser_commit[0]) == (
        ("l", "r") if winner == LOCAL else ("r", "l"))
    mirrored = LaterChangeWins().resolve(both(remote, local, remote_time, local_time))
    assert mirrored.entry == resolution.entry                  # symmetric
    assert mirrored.conflict.winner != winner


def test_a_conflict_names_the_record_or_none_for_the_format_file():
    record = LaterChangeWins().resolve(both((FILE, "1a"), (FILE, "2b"), 1, 2)).conflict
    assert (record.type, record.id, record.relpath) == (
        "volumes", "v0", paths.record_path("volumes", "v0"))
    meta = LaterChangeWins().resolve(both((FILE, "1a"), (FILE, "2b"), 1, 2,
                                          path=PREFIX + FORMAT_FILE)).conflict
    assert (meta.type, meta.id, meta.relpath) == (None, None, FORMAT_FILE)


# -- FormatUnion ----------------------------------------------------------------------

class FakeBlobs:
    def __init__(self, *contents: bytes) -> None:
        self.store = {self.id_of(data): data for data in contents}

    @staticmethod
    def id_of(data: bytes) -> str:
        return hashlib.sha1(data).hexdigest()

    def blobs(self, ids):
        return {i: self.store[i] for i in ids}

    def write_blob(self, data):
        self.store[self.id_of(data)] = data
        return self.id_of(data)


def format_file(fields: dict) -> bytes:
    return formatfile.render({}, {t: frozenset(names) for t, names in fields.items()})


field_sets = st.dictionaries(st.sampled_from(["conns", "volumes"]),
                             st.sets(st.sampled_from(["password", "token", "key"]), min_size=1),
                             max_size=2)


@settings(max_examples=100, deadline=None)
@given(field_sets, field_sets)
def test_the_format_file_union_declares_every_field_either_side_declares(mine, theirs):
    a, b = format_file(mine), format_file(theirs)
    blobs = FakeBlobs(a, b)
    path = PREFIX + FORMAT_FILE

    def union(x, y):
        case = Both(path, FORMAT_FILE, None, (FILE, blobs.id_of(x)), (FILE, blobs.id_of(y)),
                    lambda *_: pytest.fail("the union asks for no commit"))
        return FormatUnion(blobs).resolve(case)
    on_a, on_b = union(a, b), union(b, a)
    assert on_a.conflict is None and on_a.entry == on_b.entry          # both hosts agree
    declared = formatfile.declared_secrets(formatfile.parse(blobs.store[on_a.entry[1]]))
    assert declared == {t: frozenset(mine.get(t, set()) | theirs.get(t, set()))
                        for t in mine.keys() | theirs.keys()}


def test_the_format_union_leaves_other_files_and_deletions_to_the_next_resolver():
    union = FormatUnion(FakeBlobs())
    record = both((FILE, "1a"), (FILE, "2b"), 1, 2)
    deleted = both(None, (FILE, "2b"), 1, 2, path=PREFIX + FORMAT_FILE)
    assert union.resolve(record) is None and union.resolve(deleted) is None
    result = plan({deleted.path: ((FILE, "0f"), None)},
                  {deleted.path: ((FILE, "0f"), (FILE, "2b"))}, prefix=PREFIX,
                  last_change=deleted.last_change, resolvers=[union, LaterChangeWins()])
    assert [c.relpath for c in result.conflicts] == [FORMAT_FILE]


# -- plugging in a resolver -----------------------------------------------------------

class KeepRemoteVolumes:
    """A stand-in for a later resolver: decides volumes, without a conflict."""

    def __init__(self):
        self.seen = []

    def resolve(self, case):
        self.seen.append((case.base, case.local, case.remote))
        if case.relpath.startswith("volumes/"):
            return Resolution(case.remote)
        return None


def test_a_resolver_placed_first_decides_what_it_takes_and_passes_the_rest_on():
    one, snap = RECORDS[0], PREFIX + paths.record_path("snapshots", "s1")
    ours = {one: ((FILE, "0f"), (FILE, "1a")), snap: ((FILE, "0f"), (FILE, "9f"))}
    theirs = {one: ((FILE, "0f"), (FILE, "2b")), snap: ((FILE, "0f"), (FILE, "1a"))}
    first = KeepRemoteVolumes()
    result = plan(ours, theirs, prefix=PREFIX, last_change=lambda side, path: ("c" * 40, 5),
                  resolvers=[first, LaterChangeWins()])
    assert first.seen == [((FILE, "0f"), (FILE, "9f"), (FILE, "1a")),      # path order
                          ((FILE, "0f"), (FILE, "1a"), (FILE, "2b"))]
    assert result.decided == {one: (FILE, "2b"), snap: (FILE, "9f")}
    assert [c.relpath for c in result.conflicts] == [paths.record_path("snapshots", "s1")]
    with pytest.raises(ValueError, match="no resolver decided"):
        plan(ours, theirs, prefix=PREFIX, last_change=lambda *_: ("c" * 40, 5),
             resolvers=[KeepRemoteVolumes()])
