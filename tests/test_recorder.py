"""gitpersist.recorder: one commit per change or per batch, listeners after each."""

from gitpersist.layout import Change
from gitpersist.recorder import Recorder


class FakeHistory:
    def __init__(self):
        self.commits, self.pending = [], []

    def record(self, changes, message):
        self.commits.append(([c.relpath for c in changes], message))

    def commit_pending(self, relpath, data):
        self.pending.append((relpath, data))


def change(name):
    return Change(f"volumes/ab/{name}.json", b"{}", "x")


def test_without_history_nothing_is_recorded():
    recorder = Recorder(None)
    recorder.listeners.append(lambda: 1 / 0)
    assert not recorder.active
    recorder.before_change("volumes/ab/a.json", b"{}")
    recorder.record(change("a"), "m")
    with recorder.batch("b"):
        recorder.record(change("b"), "m")


def test_a_batch_is_one_commit_and_listeners_hear_each_commit():
    history, heard = FakeHistory(), []
    recorder = Recorder(history)
    recorder.listeners.append(lambda: heard.append(len(history.commits)))
    recorder.record(change("a"), "a: created")
    with recorder.batch("import"):
        recorder.record(change("b"), "b")
        with recorder.batch("inner"):           # joins the outer batch
            recorder.record(change("c"), "c")
        recorder.before_change("volumes/ab/b.json", b"{}")     # ours, in this batch: none
        recorder.before_change("volumes/ab/d.json", None)
    assert history.commits == [(["volumes/ab/a.json"], "a: created"),
                               (["volumes/ab/b.json", "volumes/ab/c.json"], "import")]
    assert history.pending == [("volumes/ab/d.json", None)]
    assert heard == [1, 2]


def test_a_batch_ended_by_an_exception_commits_what_was_written():
    history = FakeHistory()
    recorder = Recorder(history)
    try:
        with recorder.batch("half"):
            recorder.record(change("a"), "a")
            raise RuntimeError
    except RuntimeError:
        pass
    assert history.commits == [(["volumes/ab/a.json"], "half")]
    with recorder.batch("empty"):
        pass
    assert len(history.commits) == 1
