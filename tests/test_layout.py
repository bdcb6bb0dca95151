"""gitpersist.layout: the one rule for which files the history commits."""

from gitpersist import layout, paths


def test_store_files_are_records_and_the_two_format_files():
    assert layout.is_store_file(paths.record_path("volumes", "v1"))
    assert layout.is_store_file(layout.FORMAT_FILE)
    assert layout.is_store_file(layout.GITIGNORE_FILE)
    for other in (layout.LOCK_FILE, layout.KEY_FILE, "config.json", "volumes/ab",
                  layout.side_path(paths.record_path("volumes", "v1")),
                  "volumes/../x.json"):
        assert not layout.is_store_file(other), other


def test_the_gitignore_keeps_all_but_the_format_files_out_of_git():
    assert layout.META_GITIGNORE.split() == [b"*", b"!.gitignore", b"!format.json"]
