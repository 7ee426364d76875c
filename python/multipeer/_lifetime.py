"""Ending every live session before the interpreter shuts down.

The native library calls into Python from threads of its own. A call that arrives while the interpreter is
finalizing cannot run, and the process would abort; so at exit every session still open is shut down (its
peers see it leave), and exit waits, a bounded time, until the library has let go of its callbacks.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Optional, Protocol, Set

from . import _log, _runner


class Closable(Protocol):
    def _end_at_exit(self) -> None: ...


_lock = threading.Lock()
_live: "weakref.WeakSet[Closable]" = weakref.WeakSet()
_unreleased: "Set[Lifetime]" = set()

EXIT_WAIT = 3.0
"""How long exit waits, in all, for the library to let go of the sessions' callbacks."""


class Lifetime:
    """What exit handling needs to know about one session's callbacks: when the last one ran (:attr:`ended`),
    and when the library released the delegate (:attr:`released`), after which it never calls into Python for
    this session again. Sessions whose delegate is not released yet, open or not, are waited for at exit."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.released = threading.Event()
        self._ref: Optional["weakref.ref[object]"] = None

    def watch(self, delegate: object) -> None:
        """Sets :attr:`released` once ``delegate`` is gone (hold no other reference to it)."""
        with _lock:
            _unreleased.add(self)
        self._ref = weakref.ref(delegate, self._on_release)

    def _on_release(self, _: object) -> None:
        self.released.set()
        with _lock:
            _unreleased.discard(self)

    def unwatch(self) -> None:
        """The session never started: nothing to wait for."""
        with _lock:
            _unreleased.discard(self)

    def wait(self, timeout: float) -> bool:
        return self.released.wait(timeout)


def register(session: Closable) -> None:
    with _lock:
        _live.add(session)


def unregister(session: Closable) -> None:
    with _lock:
        _live.discard(session)


def _at_exit() -> None:
    with _lock:
        sessions = list(_live)
        _live.clear()
    for session in sessions:
        try:
            session._end_at_exit()
        except BaseException:  # exit goes on whatever one session does
            pass
    # Sessions shut down before, or released, may still be delivering their last callbacks.
    deadline = time.monotonic() + EXIT_WAIT
    with _lock:
        waiting = list(_unreleased)
    for lifetime in waiting:
        lifetime.wait(max(0.0, deadline - time.monotonic()))
    _log._shutdown()
    _runner.stop()


atexit.register(_at_exit)
