"""The asyncio API with two, three and four sessions in one process (an in-process network)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any, List

import pytest
from helpers import WAIT, joined, mesh, run

import multipeer


def test_two_sessions_meet_and_see_each_others_initial_data(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice", initial_data={"color": "red", "score": 3}, discovery_info={"room": "1"})
            b, rb = await m.start("bob")
            await joined(ra, rb)
            added = rb.of(multipeer.PeerAdded)[0].peer
            assert added.display_name == "alice"
            assert added.id.display_name == "alice"
            assert added.initial_data == {"color": "red", "score": 3}
            assert added.discovery_info == {"room": "1"}
            assert [p.id for p in b.peers()] == [a.local_peer.id]
            assert b.peer(a.local_peer.id).initial_data == {"color": "red", "score": 3}  # type: ignore[union-attr]
            assert a.peers()[0].initial_data is None
            assert a.local_peer.initial_data == {"color": "red", "score": 3}
            found = [e.peer.id for e in rb.of(multipeer.PeerFound)]
            assert a.local_peer.id in found
            assert [p.id for p in b.nearby()] == [a.local_peer.id]
            code = a.verification_code(b.local_peer.id)
            assert code is not None and sum(ch.isdigit() for ch in code) == 6
            assert code == b.verification_code(a.local_peer)
            state = await ra.next(multipeer.DiscoveryStateChanged)
            assert state.state is multipeer.DiscoveryState.RUNNING

    run(main())


def test_messages_to_one_some_and_all(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            sessions = [await m.start(name) for name in ("a", "b", "c", "d")]
            (a, ra), (b, rb), (c, rc), (d, rd) = sessions
            await joined(ra, rb, rc, rd)
            await a.send(b"to everyone")
            await a.send(b"to b", to=b.local_peer.id)
            await a.send(b"to b and c", to=[b.local_peer.id, c.local_peer])
            await a.send(b"to d by id string", to=str(d.local_peer.id))
            await a.send(b"end")  # a marker: messages from one sender arrive in order
            expected = {
                "b": [b"to everyone", b"to b", b"to b and c", b"end"],
                "c": [b"to everyone", b"to b and c", b"end"],
                "d": [b"to everyone", b"to d by id string", b"end"],
            }
            for name, rec in (("b", rb), ("c", rc), ("d", rd)):
                got: List[bytes] = []
                while not got or got[-1] != b"end":
                    message = await rec.next(multipeer.Message)
                    assert message.peer == a.local_peer.id and message.reliable
                    got.append(message.data)
                assert got == expected[name], name
            assert not ra.of(multipeer.Message)

    run(main())


def test_unreliable_messages_and_their_limits(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            await joined(ra, rb)
            # A datagram may be lost, so try a few times; on loopback the first one arrives.
            for attempt in range(5):
                await a.send(b"datagram %d" % attempt, reliable=False)
                try:
                    message = await rb.next(multipeer.Message, timeout=2.0)
                    break
                except AssertionError:
                    continue
            else:
                pytest.fail("no datagram arrived in 5 tries")
            assert message.data.startswith(b"datagram") and message.reliable is False
            with pytest.raises(multipeer.DatagramTooLarge) as too_large:
                await a.send(b"x" * 100_000, reliable=False)
            assert too_large.value.size == 100_000 and too_large.value.max < 100_000
            with pytest.raises(multipeer.MessageTooLarge) as reliable_limit:
                await a.send(b"x" * (4 * 1024 * 1024 + 1))
            assert reliable_limit.value.max == 4 * 1024 * 1024
            big = os.urandom(4 * 1024 * 1024)
            await a.send(big, to=b.local_peer)
            assert (await rb.next(multipeer.Message)).data == big

    run(main())


def test_stream_chunks_arrive_in_order(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            await joined(ra, rb)
            data = os.urandom(1_500_000)
            async with await a.open_stream("video", b.local_peer.id) as stream:
                assert stream.name == "video" and stream.peer.display_name == "bob"
                for i in range(0, len(data), 100_000):
                    await stream.write(data[i : i + 100_000])
            assert stream.closed
            ended = await rb.next(multipeer.StreamEnded)
            assert ended.name == "video" and ended.error is None and ended.peer.display_name == "alice"
            chunks = [e for e in rb.of(multipeer.StreamChunk) if e.name == "video"]
            assert len(chunks) > 1
            assert b"".join(c.data for c in chunks) == data
            with pytest.raises(multipeer.StreamClosed):
                await stream.write(b"more")

            # A cancelled stream ends with an error on the other side (once its first bytes arrived there: a
            # stream reset before that is never seen at all).
            cancelled = await a.open_stream("cancelled", b.local_peer.id)
            await cancelled.write(b"partial")
            await rb.next(multipeer.StreamChunk, where=lambda e: e.name == "cancelled")
            cancelled.cancel()
            ended = await rb.next(multipeer.StreamEnded, where=lambda e: e.name == "cancelled")
            assert ended.error

    run(main())


def test_duplex_stream_echo(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            await joined(ra, rb)
            stream = await a.open_duplex_stream("echo", b.local_peer)
            received = (await rb.next(multipeer.DuplexStreamReceived)).stream
            assert received.name == "echo" and received.peer.display_name == "alice"

            async def echo() -> None:
                async with received:
                    async for chunk in received:
                        await received.write(chunk.upper())

            server = asyncio.ensure_future(echo())
            await stream.write(b"hello ")
            await stream.write(b"world")
            await stream.finish()
            answer = b""
            async for chunk in stream:
                answer += chunk
            assert answer == b"HELLO WORLD"
            await asyncio.wait_for(server, WAIT)

    run(main())


def test_file_with_progress_and_sha256(tmp_path: Any) -> None:
    async def main() -> None:
        source = tmp_path / "photo.bin"
        data = os.urandom(3 * 1024 * 1024 + 17)
        source.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob", resource_directory=str(tmp_path / "inbox"))
            await joined(ra, rb)
            transfer = await a.send_file(source, b.local_peer)
            assert transfer.name == "photo.bin" and transfer.size == len(data) and not transfer.incoming
            progress = [p async for p in transfer.updates(interval=0.01)]
            assert progress[-1].transferred == len(data) and progress[-1].fraction == 1.0
            assert all(x.transferred <= y.transferred for x, y in zip(progress[:-1], progress[1:]))
            result = await transfer
            assert result.sha256 == digest and result.size == len(data) and result.path is None
            assert transfer.finished

            started = await rb.next(multipeer.ResourceStarted)
            assert started.transfer.incoming and started.transfer.id == transfer.id
            finished = await rb.next(multipeer.ResourceFinished)
            assert finished.error is None and finished.path is not None
            assert finished.transfer.id == transfer.id
            with open(finished.path, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest
            incoming = await started.transfer
            assert incoming.sha256 == digest and incoming.path == finished.path

    run(main())


def test_files_offered_in_manual_mode_are_accepted_or_declined(tmp_path: Any) -> None:
    async def main() -> None:
        source = tmp_path / "notes.txt"
        source.write_bytes(b"some notes\n" * 1000)
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob", resource_acceptance="manual")
            await joined(ra, rb)

            declined = await a.send_file(source, b.local_peer, name="declined.txt")
            offer = (await rb.next(multipeer.ResourceOffered)).offer
            assert offer.name == "declined.txt" and offer.size == 11000 and offer.peer.display_name == "alice"
            offer.decline()
            with pytest.raises(multipeer.ResourceRefused) as refused:
                await declined
            assert refused.value.reason == multipeer.RefusalReason.DECLINED
            with pytest.raises(multipeer.AnswerExpired):
                offer.accept()

            accepted = await a.send_file(source, b.local_peer, name="accepted.txt")
            offer = (await rb.next(multipeer.ResourceOffered)).offer
            assert not offer.expired
            offer.accept()
            result = await accepted
            finished = await rb.next(multipeer.ResourceFinished)
            assert finished.error is None and os.path.basename(finished.path or "") == "accepted.txt"
            assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()

    run(main())


def test_cancelled_transfer(tmp_path: Any) -> None:
    async def main() -> None:
        source = tmp_path / "big.bin"
        with open(source, "wb") as f:
            f.truncate(256 * 1024 * 1024)  # sparse: quick to make, long enough to cancel midway
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            await joined(ra, rb)
            transfer = await a.send_file(source, b.local_peer)
            incoming = (await rb.next(multipeer.ResourceStarted)).transfer
            incoming.cancel()
            with pytest.raises(multipeer.ResourceCancelledByPeer):
                await transfer
            finished = await rb.next(multipeer.ResourceFinished)
            assert isinstance(finished.error, multipeer.ResourceCancelled) and finished.path is None
            assert not os.listdir(tmp_path / "received-bob")  # the partial file was deleted

    run(main())


def test_stop_and_start_looking_for_peers(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            await a.stop_looking_for_peers()
            stopped = await ra.next(multipeer.DiscoveryStateChanged, where=lambda e: e.state == "stopped")
            assert stopped.state is multipeer.DiscoveryState.STOPPED
            b, rb = await m.start("bob")
            c, rc = await m.start("carol")
            # bob and carol meet; alice, who stopped looking, is not seen by them.
            await joined(rb, rc)
            assert a.local_peer.id not in [p.id for p in b.nearby()]
            assert not a.peers()
            await a.start_looking_for_peers()
            await ra.next(multipeer.DiscoveryStateChanged, where=lambda e: e.state is multipeer.DiscoveryState.RUNNING)
            await joined(ra, rb, rc)
            assert {p.display_name for p in a.peers()} == {"bob", "carol"}

    run(main())


def test_invitations_in_manual_mode(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice", invitation_mode="manual")
            b, rb = await m.start("bob", invitation_mode="manual")
            await ra.next(multipeer.PeerFound, where=lambda e: e.peer.id == b.local_peer.id)
            assert not a.peers() and not b.peers()

            # bob's app declines the first invitation...
            invite = asyncio.ensure_future(a.invite(b.local_peer.id, context=b"join my game"))
            invitation = (await rb.next(multipeer.InvitationReceived)).invitation
            assert invitation.peer == a.local_peer.id and invitation.display_name == "alice"
            assert invitation.context == b"join my game" and not invitation.expired
            invitation.decline()
            with pytest.raises(multipeer.InvitationDeclined) as declined:
                await asyncio.wait_for(invite, WAIT)
            assert declined.value.peer == b.local_peer.id
            with pytest.raises(multipeer.AnswerExpired):
                invitation.accept()

            # ...and accepts the second one.
            invite = asyncio.ensure_future(a.invite(b.local_peer))
            invitation = (await rb.next(multipeer.InvitationReceived)).invitation
            assert invitation.context is None
            invitation.accept()
            await asyncio.wait_for(invite, WAIT)
            await joined(ra, rb)
            await a.send_json("welcome")
            assert (await rb.next(multipeer.Message)).json() == "welcome"

            with pytest.raises(multipeer.NotNearby):
                await a.invite("cd" * 32)

    run(main())


def test_three_sessions_leave_and_end(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            b, rb = await m.start("bob")
            c, rc = await m.start("carol")
            await joined(ra, rb, rc)
            await c.shutdown()
            await c.shutdown()  # again: nothing
            reasons = []
            for rec in (ra, rb):
                removed = await rec.next(multipeer.PeerRemoved)
                assert removed.peer.id == c.local_peer.id
                reasons.append(removed.reason)
            assert "left" in reasons, reasons
            assert (await rc.next(multipeer.SessionEnded)).reason == "shut down"
            assert c.closed
            with pytest.raises(multipeer.SessionClosed):
                await c.send(b"x")
            with pytest.raises(multipeer.SessionClosed):
                c.peers()
            # The event iteration ended after SessionEnded.
            assert isinstance(rc.events[-1], multipeer.SessionEnded)
            await asyncio.wait_for(rc._task, WAIT)
            with pytest.raises(multipeer.SessionClosed):
                await c.next_event()
            assert [e async for e in c.events()] == []
            assert {p.display_name for p in a.peers()} == {"bob"}

    run(main())


def test_start_awaited_or_as_context_manager() -> None:
    async def main() -> None:
        network = multipeer.InProcessNetwork()
        session = await multipeer.Session.start("alice", "pytest-mp", network=network)
        async with session:
            assert not session.closed
        assert session.closed
        async with multipeer.Session.start("bob", "pytest-mp", network=network) as bob:
            assert isinstance(bob, multipeer.Session) and "bob" in repr(bob)
        assert bob.closed
        async with await multipeer.Session.start("carol", "pytest-mp", network=network) as carol:
            assert not carol.closed
        assert carol.closed

    run(main())


def test_back_pressure_keeps_every_message_in_order(tmp_path: Any) -> None:
    async def main() -> None:
        async with mesh(tmp_path) as m:
            a, ra = await m.start("alice")
            network = m.network
            async with multipeer.Session.start("bob", "pytest-mp", network=network, max_events=4) as b:
                # Read bob's events slowly, by hand, while alice sends many messages.
                while True:
                    event = await b.next_event(WAIT)
                    if isinstance(event, multipeer.PeerAdded):
                        break
                await ra.next(multipeer.PeerAdded)
                count = 500
                sender = asyncio.ensure_future(asyncio.gather(*[a.send(b"%d" % i + b" " * 1000) for i in range(count)]))
                got = []
                while len(got) < count:
                    event = await b.next_event(WAIT)
                    if isinstance(event, multipeer.Message):
                        got.append(int(event.data.split()[0]))
                    assert b._channel._waiting <= 4
                await asyncio.wait_for(sender, WAIT)
                assert sorted(got) == list(range(count))

    run(main())


def test_next_event_times_out() -> None:
    async def main() -> None:
        async with multipeer.Session.start("alone", "pytest-mp", network=multipeer.InProcessNetwork()) as s:

            async def drain() -> None:
                while True:
                    await s.next_event(0.2)

            with pytest.raises(asyncio.TimeoutError):
                await drain()

    run(main())


def test_diagnostics_and_ticket() -> None:
    async def main() -> None:
        async with multipeer.Session.start("alone", "pytest-mp", network=multipeer.InProcessNetwork()) as s:
            assert isinstance(await s.diagnostics(), str)
            ticket = s.ticket()
            assert isinstance(ticket, str) and ticket
            with pytest.raises(multipeer.InvalidTicket):
                await s.connect_ticket("garbage")

    run(main())
