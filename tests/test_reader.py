"""gitpersist.reader: a write reads its record and side file once."""

from __future__ import annotations

import collections

import pytest

from gitpersist import Store, files, paths
from gitpersist.layout import side_path

SECRETS = {"connections": ["connection_info"]}


@pytest.mark.parametrize("git", [False, True], ids=["plain", "git"])
def test_a_put_reads_the_record_and_its_side_file_once(tmp_path, monkeypatch, git):
    with Store(tmp_path, git=git, watch="off", fsync=False, secret_fields=SECRETS) as store:
        revision = store.put("connections", "c1", {"connection_info": {"password": "a"}})
        reads: collections.Counter[str] = collections.Counter()
        real_read = files.read

        def counting(path):
            reads[str(path)] += 1
            return real_read(path)
        monkeypatch.setattr(files, "read", counting)
        store.put("connections", "c1", {"connection_info": {"password": "b"}, "n": 1},
                  expect=revision)
        relpath = paths.record_path("connections", "c1")
        assert reads[str(tmp_path / relpath)] == 1
        assert reads[str(tmp_path / side_path(relpath))] == 1


def test_a_put_without_expect_git_or_secrets_reads_nothing(tmp_path, monkeypatch):
    with Store(tmp_path, watch="off", fsync=False) as store:
        store.put("volumes", "v1", {})
        monkeypatch.setattr(files, "read", lambda path: pytest.fail(f"read {path}"))
        store.put("volumes", "v1", {"n": 1})


def test_current_sees_a_broken_record_as_overwritable(tmp_path):
    with Store(tmp_path, watch="off") as store:
        relpath = paths.record_path("volumes", "v1")
        (tmp_path / relpath).parent.mkdir(parents=True)
        (tmp_path / relpath).write_text("{ torn")
        assert store.revision_of("volumes", {"id": "v1"}) == store.put(
            "volumes", "v1", {}, expect=None)
