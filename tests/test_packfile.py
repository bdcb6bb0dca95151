"""Pack files written by gitpersist.packfile, checked by git itself."""

from __future__ import annotations

import hashlib
import os

from gitdb.pack import PackEntity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitpersist import packfile
from helpers import git_bytes


def object_id(kind: bytes, data: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0%s" % (kind, len(data), data)).digest()


def write_pack(repo, objects) -> str:
    """Build a pack of `objects` into `repo`; the path of its index."""
    pack_sha, pack, index = packfile.build(objects)
    base = os.path.join(repo, ".git", "objects", "pack", f"pack-{pack_sha.hex()}")
    with open(base + ".pack", "wb") as file:
        file.write(pack)
    with open(base + ".idx", "wb") as file:
        file.write(index)
    return base + ".idx"


def new_repo(tmp_path_factory) -> str:
    repo = str(tmp_path_factory.mktemp("repo"))
    git_bytes(repo, "init", "-q")
    return repo


blobs = st.lists(st.binary(max_size=3000), min_size=1, max_size=20, unique=True)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datas=blobs)
def test_git_reads_back_every_object(tmp_path_factory, datas):
    repo = new_repo(tmp_path_factory)
    objects = {object_id(b"blob", data): (b"blob", data) for data in datas}
    index = write_pack(repo, objects)
    git_bytes(repo, "verify-pack", index)
    for binsha, (_, data) in objects.items():
        assert git_bytes(repo, "cat-file", "blob", binsha.hex()) == data


def test_trees_and_commits_make_a_history_git_fsck_accepts(tmp_path_factory):
    repo = new_repo(tmp_path_factory)
    blob = b"{}\n"
    blob_id = object_id(b"blob", blob)
    tree = b"100644 a.json\0" + blob_id
    tree_id = object_id(b"tree", tree)
    commit = (b"tree %s\nauthor a <a@b> 0 +0000\ncommitter a <a@b> 0 +0000\n\nm\n"
              % tree_id.hex().encode())
    commit_id = object_id(b"commit", commit)
    write_pack(repo, {blob_id: (b"blob", blob), tree_id: (b"tree", tree),
                      commit_id: (b"commit", commit)})
    git_bytes(repo, "update-ref", "refs/heads/main", commit_id.hex())
    git_bytes(repo, "fsck", "--strict", "--no-dangling")
    assert git_bytes(repo, "show", "main:a.json") == blob


def test_object_headers_match_gitdbs_for_any_size():
    from gitdb.pack import create_pack_object_header
    for size in (0, 15, 16, 127, 128, 2**20, 2**35 + 7, 2**62):
        for type_id in packfile.TYPE_IDS.values():
            assert packfile._entry_header(type_id, size) == \
                create_pack_object_header(type_id, size)


def test_offsets_past_the_small_table_go_to_the_large_one(tmp_path_factory, monkeypatch):
    """Packs over 2 GiB need 64-bit offsets: lower the threshold so that a
    small pack takes that path, and let git and gitdb read it."""
    monkeypatch.setattr(packfile, "_LARGE", 64)
    repo = new_repo(tmp_path_factory)
    datas = [os.urandom(100) for _ in range(5)]    # incompressible: past 64 at once
    objects = {object_id(b"blob", data): (b"blob", data) for data in datas}
    index = write_pack(repo, objects)
    git_bytes(repo, "verify-pack", index)
    entity = PackEntity(index[:-len(".idx")] + ".pack")
    for binsha, (_, data) in objects.items():
        assert git_bytes(repo, "cat-file", "blob", binsha.hex()) == data
        assert entity.stream(binsha).read() == data
