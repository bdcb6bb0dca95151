"""gitpersist.options: one table, the same rules for Store(...) and the plugin."""

import pytest

from gitpersist import ConfigError, Store, options


def test_defaults_pass_their_own_checks():
    assert options.parse({}) == options.Options()
    for name, check in options.CHECKS.items():
        assert check(name, options.DEFAULTS[name]) == options.DEFAULTS[name], name


@pytest.mark.parametrize("option, value", [
    ("commit_mode", "bogus"), ("author", "not an author"), ("commit_delay", -1),
])
def test_history_options_are_checked_without_git_too(tmp_path, option, value):
    with pytest.raises(ConfigError, match=f"^{option}: {value!r}"):
        Store(tmp_path / "s", git=False, **{option: value})
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("text, parsed", [
    ("Name <e@x>", ("Name", "e@x")), ("Name<e@x>", ("Name", "e@x")),
    ("  Cinder Volume  <cinder@example.com> ", ("Cinder Volume", "cinder@example.com")),
    ("Name <>", ("Name", "")),
])
def test_one_author_rule(text, parsed):
    assert options.parse_author("author", text) == parsed
    assert options.parse({"author": text}).author == f"{parsed[0]} <{parsed[1]}>"


@pytest.mark.parametrize("text", ["no email", "<only@email>", "Two <a> <b>", "A <b\n>", 5])
def test_bad_authors_are_refused(text):
    with pytest.raises(ConfigError, match="^author: .* is not of the form 'Name <email>'"):
        options.parse({"author": text})


@pytest.mark.parametrize("values, message", [
    ({"remote": "origin"}, "remote: 'origin' needs git true"),
    ({"git": True, "sync_every": 5}, "sync_every: 5 needs remote"),
    ({"git": True, "sync_on_open": True}, "sync_on_open: True needs remote"),
    ({"git": True, "sync_after_commit": True}, "sync_after_commit: True needs remote"),
    ({"watch": "sometimes"}, "watch: 'sometimes' is not one of 'native', 'polling', 'off'"),
    ({"gti": True}, "gti: unknown option"),
])
def test_rules_between_options(values, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        options.parse(values)


def test_labels_name_the_option_as_the_caller_does():
    with pytest.raises(ConfigError, match=r"^persistence_config 'remote': 'o' needs "
                                          r"persistence_config 'git'"):
        options.parse({"remote": "o"}, label=lambda key: f"persistence_config {key!r}")
