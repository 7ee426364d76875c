"""From the session's callback thread to the asyncio event loop.

The native library calls the delegate one call at a time, in order, on one thread of the session. Each call
becomes an event handed to the event loop with ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``.

Flow control: at most ``max_events`` events wait for the app at a time. While that many wait, the callback
thread blocks until the app takes one; the native library then holds further messages in its own byte-bounded
queue and, through QUIC flow control, slows the senders down: back-pressure from the app's ``async for`` loop
to the sending peers, and memory bounded on every side. ``max_events=0`` lifts the bound (events then pile up
in memory if the app does not read them). Once the app shut the session down, the bound is lifted so the last
events can always arrive; once the session object is gone, events are dropped.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, Optional

from . import _ffi
from ._handles import DuplexStream, Invitation, ResourceOffer, ResourceTransfer
from ._lifetime import Lifetime
from ._types import DiscoveryState, NearbyPeer, Peer, PeerId
from .errors import _from_optional
from .events import (
    ConnectionFailed,
    DiscoveryStateChanged,
    DuplexStreamReceived,
    Event,
    InvitationReceived,
    Message,
    PeerAdded,
    PeerFound,
    PeerLost,
    PeerRemoved,
    ResourceFinished,
    ResourceOffered,
    ResourceStarted,
    SessionEnded,
    StreamChunk,
    StreamEnded,
)


class Names:
    """Display names by peer id, learnt (on the callback thread) from discovery, invitations and joins."""

    def __init__(self) -> None:
        self._names: Dict[str, str] = {}

    def learn(self, id: str, display_name: str) -> None:
        self._names[id] = display_name

    def peer(self, id: str) -> PeerId:
        return PeerId(id, self._names.get(id, ""))


class EventChannel:
    """Events from the callback thread to one event loop, with the flow control described above."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_events: int) -> None:
        self._loop = loop
        self._queue: "asyncio.Queue[Event]" = asyncio.Queue()
        self._max = max(0, int(max_events))
        self._cond = threading.Condition()
        self._waiting = 0  # handed to the loop, not yet taken by the app
        self._bounded = self._max > 0
        self._dropping = False

    def put(self, event: Event) -> None:
        """Called on the callback thread: waits while the app has ``max_events`` events to read."""
        with self._cond:
            while self._bounded and not self._dropping and self._waiting >= self._max:
                self._cond.wait()
            if self._dropping:
                return
            self._waiting += 1
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the event loop is closed: nobody can read events any more
            self.drop()

    async def get(self) -> Event:
        event = await self._queue.get()
        with self._cond:
            self._waiting -= 1
            self._cond.notify()
        return event

    def get_nowait(self) -> Optional[Event]:
        try:
            event = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        with self._cond:
            self._waiting -= 1
            self._cond.notify()
        return event

    def unbound(self) -> None:
        """Lifts the bound (the session was shut down: let its last events arrive)."""
        with self._cond:
            self._bounded = False
            self._cond.notify_all()

    def drop(self) -> None:
        """Drops every event from now on (nobody will read them) and releases a waiting callback."""
        with self._cond:
            self._dropping = True
            self._cond.notify_all()


class AsyncDelegate(_ffi.SessionDelegate):
    """Turns the native callbacks into :mod:`multipeer.events` on an :class:`EventChannel`.

    It holds no reference to the :class:`~multipeer.Session` object, so that releasing the session releases
    the native session (and says goodbye to the peers).
    """

    def __init__(self, channel: EventChannel, names: Names, lifetime: Lifetime) -> None:
        self._channel = channel
        self._names = names
        self._lifetime = lifetime

    def _emit(self, event: Event) -> None:
        self._channel.put(event)

    def peer_found(self, peer: Any) -> None:
        self._names.learn(peer.id, peer.display_name)
        self._emit(PeerFound(NearbyPeer._from_ffi(peer)))

    def peer_lost(self, peer: Any) -> None:
        self._emit(PeerLost(NearbyPeer._from_ffi(peer)))

    def invitation_received(self, invitation: Any) -> None:
        wrapped = Invitation(invitation)
        self._names.learn(str.__str__(wrapped.peer), wrapped.display_name)
        self._emit(InvitationReceived(wrapped))

    def peer_added(self, peer: Any) -> None:
        self._names.learn(peer.id, peer.display_name)
        self._emit(PeerAdded(Peer._from_ffi(peer)))

    def peer_removed(self, peer: Any, reason: str) -> None:
        self._emit(PeerRemoved(Peer._from_ffi(peer), reason))

    def received(self, peer: str, data: bytes, reliable: bool) -> None:
        self._emit(Message(self._names.peer(peer), bytes(data), bool(reliable)))

    def stream_data(self, peer: str, name: str, data: bytes) -> None:
        self._emit(StreamChunk(self._names.peer(peer), name, bytes(data)))

    def stream_finished(self, peer: str, name: str, error: Optional[str]) -> None:
        self._emit(StreamEnded(self._names.peer(peer), name, error))

    def duplex_stream_received(self, stream: Any) -> None:
        self._emit(DuplexStreamReceived(DuplexStream(stream, self._names.peer(stream.peer_id()))))

    def discovery_state_changed(self, state: Any) -> None:
        reason = getattr(state, "reason", None)
        self._emit(DiscoveryStateChanged(DiscoveryState._from_ffi(state), reason))

    def session_ended(self, reason: str) -> None:
        try:
            self._emit(SessionEnded(reason))
        finally:
            self._lifetime.ended.set()

    def connection_failed(self, peer: str, reason: str) -> None:
        self._emit(ConnectionFailed(self._names.peer(peer), reason))

    def resource_started(self, transfer: Any) -> None:
        self._emit(ResourceStarted(ResourceTransfer(transfer, self._names.peer(transfer.peer()))))

    def resource_finished(self, transfer: Any, path: Optional[str], error: Optional[BaseException]) -> None:
        wrapped = ResourceTransfer(transfer, self._names.peer(transfer.peer()))
        self._emit(ResourceFinished(wrapped, path, _from_optional(error)))

    def resource_offered(self, offer: Any) -> None:
        self._emit(ResourceOffered(ResourceOffer(offer, self._names.peer(offer.peer_id()))))
