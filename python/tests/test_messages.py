"""Messages as JSON, peer ids and the values events carry."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from typing import Any

import pytest
from helpers import joined, mesh, run

import multipeer

VALUES: list = [
    "hello",
    "",
    "ünïcødé ✓ 🦀",
    42,
    -1.5,
    True,
    None,
    [1, "two", 3.0, None, False],
    {"text": "hi", "count": 3, "nested": {"list": [1, {"deep": []}]}},
    {"empty": {}, "unicode": "日本語"},
]


def test_message_json_round_trip_without_a_session() -> None:
    for value in VALUES:
        message = multipeer.Message(multipeer.PeerId("ab" * 32, "Alice"), json.dumps(value).encode(), True)
        assert message.json() == value
    text = multipeer.Message(multipeer.PeerId("ab" * 32), "grüß".encode(), False)
    assert text.text() == "grüß"
    with pytest.raises(ValueError):
        multipeer.Message(multipeer.PeerId("ab" * 32), b"\xff not json", True).json()


def test_peer_id_is_a_string_with_a_display_name() -> None:
    pid = multipeer.PeerId("ab" * 32, "Alice")
    assert pid == "ab" * 32 and hash(pid) == hash("ab" * 32)
    assert {pid: 1}["ab" * 32] == 1
    assert pid.display_name == "Alice" and pid.short_id == "ab" * 5
    assert f"{pid}" == "ab" * 32 and type(str(pid)) is str
    assert "Alice" in repr(pid)
    for clone in (pickle.loads(pickle.dumps(pid)), copy.copy(pid), copy.deepcopy(pid)):
        assert clone == pid and clone.display_name == "Alice"


def test_send_json_round_trip_between_sessions(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            await joined(ra, rb)
            for value in VALUES:
                await a.send_json(value)
            for value in VALUES:
                message = await rb.next(multipeer.Message)
                assert message.json() == value
                assert message.reliable
                assert message.peer == a.local_peer.id
                assert message.peer.display_name == "alice"
            with pytest.raises(TypeError, match="JSON-serialisable"):
                await a.send_json({"set": {1, 2}})
            with pytest.raises(TypeError, match="send_json"):
                await a.send("text, not bytes")  # type: ignore[arg-type]

    run(main())


def test_sync_messages_are_any_json_value(tmp_path: Any) -> None:
    import queue

    class Peer(multipeer.MultipeerConnectivity):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.inbox: "queue.Queue[Any]" = queue.Queue()
            self.joined: "queue.Queue[Any]" = queue.Queue()
            super().__init__(*args, **kwargs)

        def peer_added(self, peer_id: multipeer.PeerId) -> None:
            self.joined.put(peer_id)

        def receive(self, message: Any, from_peer: multipeer.PeerId) -> None:
            self.inbox.put((message, from_peer))

    from helpers import get

    network = multipeer.InProcessNetwork()
    with Peer("alice", "pytest-mp", network=network) as a, Peer("bob", "pytest-mp", network=network) as b:
        get(a.joined)
        get(b.joined)
        for value in VALUES:
            a.send(value)
        for value in VALUES:
            message, sender = get(b.inbox)
            assert message == value
            assert sender == a.my_id and sender.display_name == "alice"
        with pytest.raises(TypeError, match="JSON-serialisable"):
            a.send(object())

    # A message that is not JSON (from an app in another language) arrives as bytes.
    network2 = multipeer.InProcessNetwork()
    with Peer("carol", "pytest-mp", network=network2) as c:
        run(raw_bytes_to(network2, c))


async def raw_bytes_to(network: multipeer.InProcessNetwork, c: Any) -> None:
    from helpers import Recorder

    async with multipeer.Session.start("raw", "pytest-mp", network=network) as raw:
        rec = Recorder(raw)
        await rec.next(multipeer.PeerAdded)
        await raw.send(b"\x00\x01 not json")
        loop = asyncio.get_running_loop()
        message, sender = await loop.run_in_executor(None, lambda: c.inbox.get(timeout=10))
        assert message == b"\x00\x01 not json"
        assert sender.display_name == "raw"
