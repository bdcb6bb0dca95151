"""gitpersist.reader: a write reads its record and side file once."""

from __future__ import annotations

import collections
import subprocess

import pytest

from gitpersist import CorruptRecord, Store, files, paths
from gitpersist.layout import side_path

SECRETS = {"connections": ["connection_info"]}


@pytest.mark.parametrize("git", [False, True], ids=["plain", "git"])
def test_a_put_reads_the_record_and_its_side_file_once(tmp_path, monkeypatch, git):
    with Store(tmp_path, git=git, watch="off", fsync=False, secret_fields=SECRETS) as store:
        revision = store.put("connections", "c1", {"connection_info": {"password": "a"}})
        reads: collections.Counter[str] = collections.Counter()
        real_read = files.read_below

        def counting(root, relpath):
            reads[relpath] += 1
            return real_read(root, relpath)
        monkeypatch.setattr(files, "read_below", counting)
        store.put("connections", "c1", {"connection_info": {"password": "b"}, "n": 1},
                  expect=revision)
        relpath = paths.record_path("connections", "c1")
        assert reads[relpath] == 1
        assert reads[side_path(relpath)] == 1


def test_a_put_without_expect_git_or_secrets_reads_nothing(tmp_path, monkeypatch):
    with Store(tmp_path, watch="off", fsync=False) as store:
        store.put("volumes", "v1", {})
        monkeypatch.setattr(files, "read_below", lambda root, relpath: pytest.fail(f"read {relpath}"))
        store.put("volumes", "v1", {"n": 1})


def test_current_sees_a_broken_record_as_overwritable(tmp_path):
    with Store(tmp_path, watch="off") as store:
        relpath = paths.record_path("volumes", "v1")
        (tmp_path / relpath).parent.mkdir(parents=True)
        (tmp_path / relpath).write_text("{ torn")
        assert store.revision_of("volumes", {"id": "v1"}) == store.put(
            "volumes", "v1", {}, expect=None)


@pytest.mark.parametrize("level", ["type", "shard"])
def test_a_record_read_through_a_symlinked_folder_is_refused_by_name(tmp_path, level):
    """A symlink at any level below the store is never followed on read
    either (issue 13, item 4): the record is refused naming its file, and
    nothing of the folder it points to is listed or committed."""
    root, outside = tmp_path / "store", tmp_path / "outside"
    relpath = paths.record_path("volumes", "v1")
    with Store(root, git=True, watch="off", fsync=False) as store:
        store.put("volumes", "v1", {"size": 1})
    folder = root / relpath.split("/")[0] if level == "type" else (root / relpath).parent
    folder.rename(outside)
    (outside / (relpath.split("/")[1] if level == "type" else "") / relpath.rsplit("/", 1)[1]
     ).write_text('{"id": "v1", "from": "outside"}')
    folder.symlink_to(outside)
    with Store(root, git=True, watch="off") as store:
        with pytest.raises(CorruptRecord, match="symlink") as info:
            store.get("volumes", "v1")
        assert relpath.rsplit("/", 1)[1] in str(info.value)
        assert store.all("volumes") == []
        assert [c.path for c in store.corrupt("volumes")] in ([], [str(root / relpath)])
    assert "outside" not in subprocess.run(["git", "log", "-p"], cwd=root, text=True,
                                           capture_output=True).stdout
