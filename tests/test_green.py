"""The primitives of `gitpersist.green` that stay right across eventlet's
patching.  The test process never patches (conftest.py): the swap eventlet
makes is done by hand here, and real eventlet runs in new interpreters."""

from __future__ import annotations

import sys
import threading
import types

import pytest
from helpers import run_python

from gitpersist import green


def test_a_section_entered_before_the_lock_was_swapped_leaves_through_the_lock_it_took():
    cond = green.Condition()
    with cond:
        before = cond._lock
        cond._lock = threading.RLock()      # what eventlet's monkey_patch does to it
        cond.notify_all()                   # on the lock of now: held by no one...
    assert not before._is_owned()           # ...and the one taken is released
    with cond:                              # the lock of now works
        cond.notify_all()
    assert not cond._lock._is_owned()


def test_every_notify_calls_the_wakeup_hook():
    cond, calls = green.Condition(), []
    cond.on_notify = lambda: calls.append(1)
    with cond:
        cond.notify()
        cond.notify_all()
    assert calls == [1, 1]


def test_a_wakeup_keeps_one_call_until_it_is_waited_for():
    wake = green.Wakeup()
    assert not wake.wait(0.01)
    wake.set()
    wake.set()                  # twice: still one
    assert wake.wait(None)
    assert not wake.wait(0)
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(wake.wait(30)))
    waiter.start()
    wake.set()
    waiter.join(30)
    assert woken == [True]


def test_what_waits_for_the_patching_is_called_once_at_the_first_look_that_finds_it(
        monkeypatch):
    calls = []

    class Component:
        def patched(self) -> None:
            calls.append(green.green_threads())      # may look again: called once

    kept, dropped = Component(), Component()
    green.on_patching(kept.patched)
    green.on_patching(dropped.patched)
    del dropped                 # held weakly: not called, not kept alive
    assert not green.green_threads() and calls == []
    patcher = types.ModuleType("eventlet.patcher")
    patcher.is_monkey_patched = lambda name: name == "thread"       # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "eventlet.patcher", patcher)
    assert green.green_threads() and green.green_threads()
    assert calls == [True]


ENDS_AFTER_THE_PATCHING = """
import sys, threading
from gitpersist import green
go = threading.Lock(); go.acquire()         # plain: never greened
thread = threading.Thread(target=go.acquire, daemon=True)
thread.start()
import eventlet; eventlet.monkey_patch()
if sys.argv[1] == "quietly":
    green.end_quietly(thread)
go.release()
import time; time.sleep(0.5)
print("ok")
"""


@pytest.mark.parametrize("how", ["quietly", "as-is"])
def test_a_thread_of_before_the_patching_ends_after_it_without_a_traceback(how):
    pytest.importorskip("eventlet")
    run = run_python(ENDS_AFTER_THE_PATCHING, how, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    if how == "quietly":
        assert "Traceback" not in run.stderr, run.stderr
    else:                       # what end_quietly is for
        assert "KeyError" in run.stderr, run.stderr


def test_own_threads_are_told_from_others():
    ended = threading.Thread(target=lambda: None)
    ended.start(), ended.join()
    green.own_thread(ended)         # its ident may be the next thread's: not ours then
    seen, go = [], threading.Event()

    def look():
        go.wait(30)
        seen.append(green.in_own_thread())
    ours, other = threading.Thread(target=look), threading.Thread(target=look)
    ours.start(), other.start()
    green.own_thread(ours)
    go.set()
    ours.join(30), other.join(30)
    assert sorted(seen) == [False, True] and not green.in_own_thread()
