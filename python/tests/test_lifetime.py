"""Sessions end cleanly: released without shutdown, at interpreter exit, on Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Iterator

import pytest
from helpers import WAIT, Recorder, get, get_matching, joined, run

import multipeer

SERVICE = "pytest-life"
HERE = os.path.dirname(os.path.abspath(__file__))  # a working directory without the package's source


def _env() -> dict:
    """The environment for a child interpreter that imports the same multipeer package as this one."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(multipeer.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _python(code: str, timeout: float = 60.0) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env(),
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Watcher:
    """A session on an event loop of its own thread, noting when each event reaches it: what the app of a peer
    sees, whatever the thread that releases a session is busy with."""

    def __init__(self, network: multipeer.InProcessNetwork) -> None:
        self.seen: "queue.Queue[tuple]" = queue.Queue()
        self._started: "queue.Queue[Any]" = queue.Queue()
        self.session_network = network
        self._thread = threading.Thread(target=asyncio.run, args=(self._watch(network),), daemon=True)
        self._thread.start()
        self.loop, self.session, self._stop = get(self._started)

    async def _watch(self, network: multipeer.InProcessNetwork) -> None:
        stop = asyncio.Event()
        async with multipeer.Session.start("watcher", SERVICE, network=network) as session:

            async def note() -> None:
                async for event in session.events():
                    self.seen.put((time.monotonic(), event))

            noting = asyncio.ensure_future(note())
            self._started.put((asyncio.get_running_loop(), session, stop))
            await stop.wait()
        await asyncio.wait_for(noting, WAIT)

    def next(self, kind: type, timeout: float = WAIT) -> tuple:
        return get_matching(self.seen, lambda item: isinstance(item[1], kind), timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    w = Watcher(multipeer.InProcessNetwork())
    yield w
    w.close()


def test_released_async_session_is_seen_as_left_within_a_second(watcher: Watcher) -> None:
    async def main() -> None:
        bob = await multipeer.Session.start("bob", SERVICE, network=watcher.session_network)
        bob_id = bob.local_peer.id
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: watcher.next(multipeer.PeerAdded))
        released = time.monotonic()
        del bob  # no shutdown()
        gc.collect()
        seen_at, removed = await loop.run_in_executor(None, lambda: watcher.next(multipeer.PeerRemoved))
        assert removed.peer.id == bob_id and removed.reason == "left"
        assert seen_at - released < 1.0

    run(main())


def test_released_sync_session_is_seen_as_left_within_a_second(watcher: Watcher) -> None:
    bob = multipeer.MultipeerConnectivity("bob", SERVICE, network=watcher.session_network)
    bob_id = bob.my_id
    watcher.next(multipeer.PeerAdded)
    released = time.monotonic()
    del bob  # no end_all()
    gc.collect()
    seen_at, removed = watcher.next(multipeer.PeerRemoved)
    assert removed.peer.id == bob_id and removed.reason == "left"
    assert seen_at - released < 1.0
    assert watcher.session.peers() == []


def test_end_all_is_seen_as_removed_by_an_async_peer() -> None:
    async def main() -> None:
        network = multipeer.InProcessNetwork()
        async with multipeer.Session.start("alice", SERVICE, network=network) as alice:
            watcher = Recorder(alice)
            bob = multipeer.MultipeerConnectivity("bob", SERVICE, network=network)
            await watcher.next(multipeer.PeerAdded)
            bob.end_all()
            removed = await watcher.next(multipeer.PeerRemoved)
            assert removed.peer.id == bob.my_id and removed.reason == "left"

    run(main())


def test_sessions_left_open_at_exit_end_cleanly() -> None:
    # Sessions of both APIs still open, logging on, callbacks busy: the interpreter must exit normally.
    result = _python(
        """
        import asyncio, logging, sys
        import multipeer

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        multipeer.enable_logging("DEBUG")
        network = multipeer.InProcessNetwork()

        class Chatty(multipeer.MultipeerConnectivity):
            def receive(self, message, from_peer):
                pass

        a = Chatty("a", "exit-test", network=network)
        b = Chatty("b", "exit-test", network=network)

        async def main():
            global s
            s = await multipeer.Session.start("s", "exit-test", network=network)
            while len(s.peers()) < 2:
                await s.next_event(10)
            for i in range(200):
                await s.send_json(i)

        asyncio.run(main())
        print("leaving with open sessions", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "leaving with open sessions" in result.stdout
    assert "Fatal Python error" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_while_waiting_ends_the_session() -> None:
    code = textwrap.dedent(
        """
        import signal, sys, threading, time
        import multipeer

        # Ctrl-C as a terminal delivers it, even if this process was started with SIGINT ignored (as commands
        # started in the background by a non-interactive shell are).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        mc = multipeer.MultipeerConnectivity("waiter", "exit-test", network=multipeer.InProcessNetwork())
        main = threading.main_thread().ident

        def announce():
            # Say "ready" once the main thread is blocked in wait(), so that Ctrl-C lands there.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                frame = sys._current_frames().get(main)
                while frame is not None and frame.f_code is not multipeer.MultipeerConnectivity.wait.__code__:
                    frame = frame.f_back
                if frame is not None:
                    print("ready", flush=True)
                    return
                time.sleep(0.01)

        threading.Thread(target=announce, daemon=True).start()
        ended = mc.wait()
        print("ended" if ended and mc.ended else "not ended", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env=_env(),
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-3000:]
    assert out.strip() == "ended"


def test_logging_goes_to_the_multipeer_logger() -> None:
    import logging

    records: "queue.Queue[logging.LogRecord]" = queue.Queue()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.put(record)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("multipeer")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    multipeer.enable_logging(logging.DEBUG)
    try:

        async def main() -> None:
            network = multipeer.InProcessNetwork()
            async with multipeer.Session.start("alice", SERVICE, network=network) as a:
                async with multipeer.Session.start("bob", SERVICE, network=network) as b:
                    await joined(Recorder(a), Recorder(b))

        run(main())
        record = get_matching(records, lambda r: hasattr(r, "rust_target"))
        assert record.name.startswith("multipeer")
        assert record.rust_target.startswith("multipeer")  # type: ignore[attr-defined]
        assert record.levelno in (5, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
    finally:
        multipeer.disable_logging()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    with pytest.raises(ValueError, match="unknown log level"):
        multipeer.enable_logging("LOUD")
