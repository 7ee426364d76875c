"""Find apps of the same kind on the local network and talk to them: no server, no accounts, no cloud.

Peers advertise a *service type* over mDNS / DNS-SD; every peer found joins one encrypted QUIC session (up
to 8 peers), in which apps send reliable or unreliable messages, byte streams and files to one, some or all
peers.

Two APIs over the same sessions:

- :class:`Session`, for asyncio: ``async with multipeer.Session.start("Alice", "chat") as session``, then
  ``async for event in session.events()``, ``await session.send(...)``, streams, files with progress,
  invitations.
- :class:`MultipeerConnectivity`, blocking, modelled on the Pythonista ``multipeer`` module: subclass it,
  override ``receive`` / ``peer_added`` / ``peer_removed`` / ``stream_receive``, call ``send(message)``.

Errors are :class:`MultipeerError` subclasses (see :mod:`multipeer.errors`); :func:`enable_logging` sends
the library's log records to the :mod:`logging` logger ``"multipeer"``.
"""

from __future__ import annotations

from typing import Union

try:
    from . import _ffi
except ImportError as e:  # pragma: no cover - a source tree without the built bindings
    raise ImportError(
        "multipeer: the native bindings (the generated multipeer_ffi module and the multipeer_ffi library) are "
        f"missing from {__path__[0]!r}; install the built package (pip install multipeer) rather than importing "
        "the sources"
    ) from e
from . import _lifetime  # noqa: F401  (registers the exit handler)
from ._config import validate_display_name, validate_service_type
from ._ffi import CongestionControl, InvitationMode, LogLevel, ResourceAcceptance
from ._handles import DuplexStream, Invitation, OutgoingStream, ResourceOffer, ResourceTransfer
from ._log import disable_logging, enable_logging
from ._types import DiscoveryState, NearbyPeer, Peer, PeerId, Progress, ResourceResult
from .errors import (
    AnswerExpired,
    CallbackFailed,
    ConnectionLost,
    DatagramTooLarge,
    DiscoveryFailed,
    InternalError,
    InvalidConfig,
    InvalidIdentity,
    InvalidPeerId,
    InvalidResourceName,
    InvalidTicket,
    InvitationDeclined,
    InvitationError,
    InvitationTimedOut,
    MessageTooLarge,
    MultipeerError,
    NotConnected,
    NotDelivered,
    NotNearby,
    RefusalReason,
    ResourceCancelled,
    ResourceCancelledByPeer,
    ResourceError,
    ResourceFailed,
    ResourceInterrupted,
    ResourceRefused,
    SessionClosed,
    StartFailed,
    StreamClosed,
    StreamIOError,
    _translated,
)
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
from .session import InProcessNetwork, Session
from .sync import MultipeerConnectivity

try:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    __version__ = _version("multipeer")
except PackageNotFoundError:  # not installed (running from a source tree)
    __version__ = "0.0.0"

ForeignDiscovery = _ffi.ForeignDiscovery
"""Base class for a discovery implemented by the app (advanced; see ``Session.start(discovery=...)``)."""


def generate_identity() -> bytes:
    """A new identity to save (PKCS#8 bytes); pass it as ``identity=`` to keep the same peer id."""
    return bytes(_ffi.generate_identity())


def identity_peer_id(identity: Union[bytes, bytearray]) -> PeerId:
    """The peer id a saved identity has; :class:`InvalidIdentity` if the bytes are not one."""
    with _translated():
        return PeerId(_ffi.identity_peer_id(bytes(identity)))


__all__ = [
    # asyncio API
    "Session",
    "InProcessNetwork",
    "OutgoingStream",
    "DuplexStream",
    "ResourceTransfer",
    "Invitation",
    "ResourceOffer",
    # blocking API
    "MultipeerConnectivity",
    # values
    "PeerId",
    "Peer",
    "NearbyPeer",
    "Progress",
    "ResourceResult",
    "DiscoveryState",
    "InvitationMode",
    "ResourceAcceptance",
    "CongestionControl",
    "RefusalReason",
    "LogLevel",
    "ForeignDiscovery",
    # events
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
    # errors
    "MultipeerError",
    "InvalidConfig",
    "InvalidIdentity",
    "InvalidPeerId",
    "InvalidTicket",
    "StartFailed",
    "DiscoveryFailed",
    "SessionClosed",
    "NotConnected",
    "MessageTooLarge",
    "DatagramTooLarge",
    "NotDelivered",
    "ConnectionLost",
    "StreamClosed",
    "StreamIOError",
    "NotNearby",
    "InvitationError",
    "InvitationDeclined",
    "InvitationTimedOut",
    "AnswerExpired",
    "ResourceError",
    "ResourceRefused",
    "ResourceCancelled",
    "ResourceCancelledByPeer",
    "ResourceInterrupted",
    "InvalidResourceName",
    "ResourceFailed",
    "CallbackFailed",
    "InternalError",
    # functions
    "enable_logging",
    "disable_logging",
    "generate_identity",
    "identity_peer_id",
    "validate_display_name",
    "validate_service_type",
]
