"""What happens in a session, as :meth:`multipeer.Session.events` yields it, in order.

Every event is a frozen dataclass deriving from :class:`Event`; match on the class::

    async for event in session.events():
        if isinstance(event, multipeer.Message):
            print(event.peer.display_name, event.text())

or, on Python 3.10 and later, ``match event: case multipeer.Message(peer=peer, data=data): ...``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from ._handles import DuplexStream, Invitation, ResourceOffer, ResourceTransfer
from ._types import DiscoveryState, NearbyPeer, Peer, PeerId
from .errors import MultipeerError

__all__ = [
    "Event",
    "PeerFound",
    "PeerLost",
    "PeerAdded",
    "PeerRemoved",
    "Message",
    "StreamChunk",
    "StreamEnded",
    "DuplexStreamReceived",
    "InvitationReceived",
    "ConnectionFailed",
    "DiscoveryStateChanged",
    "ResourceOffered",
    "ResourceStarted",
    "ResourceFinished",
    "SessionEnded",
]


@dataclass(frozen=True)
class Event:
    """The base class of every event."""


@dataclass(frozen=True)
class PeerFound(Event):
    """Discovery found a peer nearby (or what it announces changed), whether or not it joins."""

    peer: NearbyPeer


@dataclass(frozen=True)
class PeerLost(Event):
    """A peer found earlier stopped advertising."""

    peer: NearbyPeer


@dataclass(frozen=True)
class PeerAdded(Event):
    """A peer joined the session."""

    peer: Peer


@dataclass(frozen=True)
class PeerRemoved(Event):
    """A peer left the session; :attr:`reason` says why (``"left"``, ``"timed out"``, ...)."""

    peer: Peer
    reason: str


@dataclass(frozen=True)
class Message(Event):
    """A message arrived from :attr:`peer`."""

    peer: PeerId
    """The sender (with its display name)."""
    data: bytes
    """The bytes sent."""
    reliable: bool
    """Whether it was sent reliably (``False``: as a datagram)."""

    def text(self, encoding: str = "utf-8") -> str:
        """The data decoded as text."""
        return self.data.decode(encoding)

    def json(self) -> Any:
        """The data decoded as JSON (as :meth:`Session.send_json` sends it); ``ValueError`` if it is not."""
        return json.loads(self.data)


@dataclass(frozen=True)
class StreamChunk(Event):
    """The next bytes of the incoming stream :attr:`name` from :attr:`peer`, in order (chunk boundaries do not
    follow the sender's writes)."""

    peer: PeerId
    name: str
    data: bytes


@dataclass(frozen=True)
class StreamEnded(Event):
    """The incoming stream :attr:`name` from :attr:`peer` ended: cleanly when :attr:`error` is ``None``."""

    peer: PeerId
    name: str
    error: Optional[str] = None


@dataclass(frozen=True)
class DuplexStreamReceived(Event):
    """A peer opened a two-way stream with us: read and write :attr:`stream`."""

    stream: DuplexStream


@dataclass(frozen=True)
class InvitationReceived(Event):
    """A peer invites us (invitation mode ``"manual"``): keep :attr:`invitation` and ``accept()`` or
    ``decline()`` it once the user decided."""

    invitation: Invitation


@dataclass(frozen=True)
class ConnectionFailed(Event):
    """A connection to :attr:`peer` failed before it joined (for example the session was full)."""

    peer: PeerId
    reason: str


@dataclass(frozen=True)
class DiscoveryStateChanged(Event):
    """Discovery started, stopped, failed or was refused permission; :attr:`reason` says why it failed."""

    state: DiscoveryState
    reason: Optional[str] = None


@dataclass(frozen=True)
class ResourceOffered(Event):
    """A peer offers a resource (resource acceptance ``"manual"``): keep :attr:`offer` and ``accept()`` or
    ``decline()`` it once the user decided."""

    offer: ResourceOffer


@dataclass(frozen=True)
class ResourceStarted(Event):
    """A peer started sending us a resource (a file): follow :attr:`transfer` (``async for progress in
    transfer``) or cancel it. A :class:`ResourceFinished` follows."""

    transfer: ResourceTransfer


@dataclass(frozen=True)
class ResourceFinished(Event):
    """A resource from a peer finished: saved complete and verified at :attr:`path` (then :attr:`error` is
    ``None``), or failed with :attr:`error` (then :attr:`path` is ``None`` and a partial file was deleted)."""

    transfer: ResourceTransfer
    path: Optional[str]
    error: Optional[MultipeerError] = None


@dataclass(frozen=True)
class SessionEnded(Event):
    """The session ended (``"shut down"``, or ``"released without shutdown"``): the last event."""

    reason: str
