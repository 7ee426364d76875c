"""The blocking API (modelled on Pythonista's multipeer module) with sessions in one process."""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
from typing import Any, List

import pytest
from helpers import WAIT, get_matching, poll, run
from helpers import Recorder as Events

import multipeer

SERVICE = "pytest-sync"


class Recorder(multipeer.MultipeerConnectivity):
    """Puts every callback on a queue, and checks callbacks never overlap and stay on one thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: "queue.Queue[tuple]" = queue.Queue()
        self.threads: set = set()
        self._inside = 0
        self.overlapped = False
        self._guard = threading.Lock()
        super().__init__(*args, **kwargs)

    def _record(self, *item: Any) -> None:
        with self._guard:
            self._inside += 1
            if self._inside > 1:
                self.overlapped = True
        self.threads.add(threading.get_ident())
        self.calls.put(item)
        with self._guard:
            self._inside -= 1

    def peer_added(self, peer_id: multipeer.PeerId) -> None:
        self._record("added", peer_id)

    def peer_removed(self, peer_id: multipeer.PeerId) -> None:
        self._record("removed", peer_id)

    def receive(self, message: Any, from_peer: multipeer.PeerId) -> None:
        self._record("message", message, from_peer)

    def stream_receive(self, byte_data: bytes, from_peer: multipeer.PeerId) -> None:
        self._record("stream", byte_data, from_peer)

    def next(self, kind: str, timeout: float = WAIT) -> tuple:
        return get_matching(self.calls, lambda item: item[0] == kind, timeout)


@pytest.fixture
def network() -> multipeer.InProcessNetwork:
    return multipeer.InProcessNetwork()


def start(name: str, network: multipeer.InProcessNetwork, **kwargs: Any) -> Recorder:
    return Recorder(name, SERVICE, network=network, **kwargs)


def meet(*peers: Recorder) -> None:
    """Waits until every peer has every other one added (through the callbacks)."""
    for peer in peers:
        others = {p.my_id for p in peers if p is not peer}
        while others - set(peer.get_peers()):
            peer.next("added")
        poll(lambda peer=peer, others=others: set(peer.get_peers()) >= others, what="all peers connected")


def test_two_peers_exchange_messages_and_initial_data(network: multipeer.InProcessNetwork) -> None:
    a = start("alice", network, initial_data={"platform": "test", "level": 7})
    b = start("bob", network, initial_data=["b", 2])
    try:
        _, added = a.next("added")
        assert added == b.my_id and added.display_name == "bob"
        _, added = b.next("added")
        assert added == a.my_id and added.display_name == "alice"
        assert b.get_initial_data(a.my_id) == {"platform": "test", "level": 7}
        assert a.get_initial_data(str(b.my_id)) == ["b", 2]
        assert a.get_initial_data("cd" * 32) is None
        assert a.get_peers() == [b.my_id] and a.get_peers()[0].display_name == "bob"

        a.send("hello")
        a.send({"text": "hi", "count": 1}, to_peer=b.my_id)
        a.send([1, 2, 3], to_peer=[b.my_id], reliable=True)
        assert b.next("message")[1:] == ("hello", a.my_id)
        assert b.next("message")[1] == {"text": "hi", "count": 1}
        assert b.next("message")[1] == [1, 2, 3]
    finally:
        a.end_all()
        b.end_all()


def test_unreliable_send(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a, start("bob", network) as b:
        meet(a, b)
        for attempt in range(5):  # a datagram may be lost; on loopback the first one arrives
            a.send({"attempt": attempt}, reliable=False)
            try:
                message = b.next("message", 2.0)
                break
            except AssertionError:
                continue
        else:
            pytest.fail("no datagram arrived in 5 tries")
        assert message[1]["attempt"] >= 0


def test_three_peers_one_some_all(network: multipeer.InProcessNetwork) -> None:
    with start("a", network) as a, start("b", network) as b, start("c", network) as c:
        meet(a, b, c)
        a.send("all")
        a.send("b only", to_peer=b.my_id)
        a.send("b and c", to_peer=[b.my_id, c.my_id])
        a.send("end")
        got_b = [b.next("message")[1] for _ in range(4)]
        got_c = [c.next("message")[1] for _ in range(3)]
        assert got_b == ["all", "b only", "b and c", "end"]
        assert got_c == ["all", "b and c", "end"]
        assert not a.overlapped and not b.overlapped and not c.overlapped
        for peer in (a, b, c):
            assert len(peer.threads) == 1
            assert threading.get_ident() not in peer.threads


def test_stream_bytes_arrive_in_order(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a, start("bob", network) as b, start("carol", network) as c:
        meet(a, b, c)
        data = os.urandom(300_000)
        for i in range(0, len(data), 30_000):
            a.stream(data[i : i + 30_000])
        a.stream(b"to carol", to_peer=c.my_id)
        for receiver, expected in ((b, data), (c, data + b"to carol")):
            got = b""
            while len(got) < len(expected):
                _, chunk, sender = receiver.next("stream")
                assert sender == a.my_id and isinstance(chunk, bytes)
                got += chunk
            assert got == expected
        with pytest.raises(TypeError, match="encode"):
            a.stream("text")  # type: ignore[arg-type]


def test_errors_are_typed(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a:
        a.send("nobody is here")  # to every connected peer: none, nothing happens
        with pytest.raises(multipeer.NotConnected):
            a.send("x", to_peer="cd" * 32)
        with pytest.raises(multipeer.InvalidPeerId):
            a.send("x", to_peer="nope")
        with pytest.raises(multipeer.MessageTooLarge):
            a.send("x" * (4 * 1024 * 1024 + 1))
    with pytest.raises(multipeer.SessionClosed):
        a.send("after end_all")
    with pytest.raises(multipeer.SessionClosed):
        a.get_peers()
    a.end_all()  # again: nothing


def test_stop_and_start_looking(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a:
        a.stop_looking_for_peers()
        with start("bob", network) as b, start("carol", network) as c:
            meet(b, c)  # bob and carol meet; alice, who stopped looking, is left alone
            assert a.get_peers() == []
            assert a.my_id not in b.get_peers()
            a.start_looking_for_peers()
            meet(a, b, c)
            assert {p.display_name for p in a.get_peers()} == {"bob", "carol"}


def test_end_all_is_seen_as_removed(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a:
        b = start("bob", network)
        meet(a, b)
        b.end_all()
        assert b.ended and b.wait(0) is True
        _, removed = a.next("removed")
        assert removed == b.my_id and removed.display_name == "bob"
        assert a.get_peers() == []


def test_disconnect_is_seen_as_removed(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network) as a, start("bob", network) as b:
        meet(a, b)
        b.disconnect()
        assert a.next("removed")[1] == b.my_id


def test_callback_errors_are_logged_and_the_session_goes_on(
    network: multipeer.InProcessNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile(Recorder):
        def receive(self, message: Any, from_peer: multipeer.PeerId) -> None:
            if message == "boom":
                raise RuntimeError("the app failed")
            super().receive(message, from_peer)

    with caplog.at_level(logging.ERROR, logger="multipeer"):
        with start("alice", network) as a, Fragile("bob", SERVICE, network=network) as b:
            meet(a, b)
            a.send("boom")
            a.send("after")
            assert b.next("message")[1] == "after"
    errors = [r for r in caplog.records if r.name == "multipeer" and r.exc_info]
    assert errors and "the app failed" in str(errors[0].exc_info[1])
    assert "receive" in errors[0].getMessage()


def test_callbacks_may_call_the_api(network: multipeer.InProcessNetwork) -> None:
    class Echo(Recorder):
        def receive(self, message: Any, from_peer: multipeer.PeerId) -> None:
            self.send({"echo": message}, to_peer=from_peer)
            if message == "bye":
                self.end_all()  # from inside a callback

    with start("alice", network) as a:
        echo = Echo("echo", SERVICE, network=network)
        meet(a, echo)
        a.send("ping")
        assert a.next("message")[1] == {"echo": "ping"}
        a.send("bye")
        assert a.next("message")[1] == {"echo": "bye"}
        assert a.next("removed")[1] == echo.my_id
        assert echo.wait(WAIT)


def test_default_callbacks_print(network: multipeer.InProcessNetwork, capsys: pytest.CaptureFixture) -> None:
    with multipeer.MultipeerConnectivity("plain", SERVICE, network=network):
        with start("alice", network) as a:
            a.next("added")
            a.send({"text": "hi"})
            a.stream(b"streamed text")
            out: List[str] = []
            poll(lambda: bool(out.append(capsys.readouterr().out)) or "streamed text" in "".join(out))
            printed = "".join(out)
            assert "Added peer alice" in printed
            assert "Message from alice - {'text': 'hi'}" in printed
            assert "Stream data from alice - streamed text" in printed


def test_wait_returns_on_timeout_and_on_ctrl_c(network: multipeer.InProcessNetwork) -> None:
    import _thread
    import signal

    # interrupt_main() does nothing while SIGINT is ignored (as in a command a non-interactive shell started in
    # the background): handle it as a terminal's Ctrl-C would be, for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with start("alice", network) as a, start("bob", network) as b:
        meet(a, b)
        assert a.wait(0.05) is False
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        try:
            assert b.wait(WAIT) is True  # Ctrl-C: ends bob cleanly instead of raising
        finally:
            timer.cancel()
            signal.signal(signal.SIGINT, previous)
        assert b.ended
        assert a.next("removed")[1] == b.my_id


def test_repr_and_attributes(network: multipeer.InProcessNetwork) -> None:
    with start("alice", network, initial_data=1) as a:
        assert a.display_name == "alice" and a.service_type == SERVICE and a.initial_data == 1
        assert a.my_id.display_name == "alice" and len(a.my_id) == 64
        assert "alice" in repr(a) and "open" in repr(a)
    assert "ended" in repr(a)


def test_callbacks_start_after_the_subclass_init(network: multipeer.InProcessNetwork) -> None:
    class Late(multipeer.MultipeerConnectivity):
        def __init__(self) -> None:
            super().__init__("late", SERVICE, network=network)
            # A peer is here already, so its peer_added is due now; it must wait for this __init__.
            poll(lambda: bool(self.get_peers()), what="a peer connected")
            self.added: "queue.Queue[multipeer.PeerId]" = queue.Queue()

        def peer_added(self, peer_id: multipeer.PeerId) -> None:
            self.added.put(peer_id)

    with start("early", network) as early:
        with Late() as late:
            assert get_matching(late.added, lambda _: True) == early.my_id


def test_a_failing_subclass_init_leaves_nothing_running(network: multipeer.InProcessNetwork) -> None:
    lifetimes = []

    class Broken(multipeer.MultipeerConnectivity):
        def __init__(self) -> None:
            super().__init__("broken", SERVICE, network=network)
            lifetimes.append(self._lifetime)
            poll(lambda: bool(self.get_peers()), what="a peer connected")  # a peer_added callback is due
            raise RuntimeError("the app failed")

    with start("watcher", network) as watcher:
        try:
            Broken()
        except RuntimeError:
            pass  # (not pytest.raises: its traceback would keep the half-made instance alive)
        else:
            pytest.fail("Broken() did not raise")
        # The half-made instance is released: its peers see it leave, and its callback thread ends.
        gc.collect()
        for kind in ("added", "removed"):
            watcher.next(kind)
        assert lifetimes[0].released.wait(WAIT)


def test_files_offered_to_the_blocking_api_are_declined(network: multipeer.InProcessNetwork, tmp_path: Any) -> None:
    source = tmp_path / "unwanted.bin"
    source.write_bytes(b"x" * 1000)

    async def offer(to: multipeer.PeerId) -> None:
        async with multipeer.Session.start("sender", SERVICE, network=network) as sender:
            events = Events(sender)
            await events.seen(multipeer.PeerAdded, where=lambda e: e.peer.id == to)
            transfer = await sender.send_file(source, to)
            with pytest.raises(multipeer.ResourceRefused) as refused:
                await transfer
            assert refused.value.reason == multipeer.RefusalReason.DECLINED

    with start("plain", network) as plain:
        run(offer(plain.my_id))
