"""The exceptions of ``multipeer``: one hierarchy under :class:`MultipeerError`.

Every error the native library reports is raised as one of these classes, with the details as attributes
(``NotConnected.peer``, ``MessageTooLarge.size`` and ``.max``, ...)::

    MultipeerError
    ├── InvalidConfig          (also a ValueError)  a setting is invalid; .detail says what is allowed
    ├── InvalidIdentity        (also a ValueError)  identity bytes that are not a key
    ├── InvalidPeerId          (also a ValueError)  .id is not a peer id
    ├── InvalidTicket          (also a ValueError)  .detail
    ├── StartFailed            the session could not start; .detail
    ├── DiscoveryFailed        .detail
    ├── SessionClosed          the session has shut down
    ├── NotConnected           .peer is not connected
    ├── MessageTooLarge        .size, .max (reliable messages: 4 MiB)
    │   └── DatagramTooLarge   an unreliable message does not fit the path
    ├── NotDelivered           a message to several peers missed some: .delivered, .failed, .detail
    ├── ConnectionLost         .peer
    ├── StreamClosed           the stream was finished or cancelled already
    ├── StreamIOError          .detail
    ├── NotNearby              discovery does not see .peer
    ├── InvitationError
    │   ├── InvitationDeclined     .peer declined
    │   └── InvitationTimedOut     (also a TimeoutError) .peer did not answer in time
    ├── AnswerExpired          an invitation or offer can no longer be answered
    ├── ResourceError
    │   ├── ResourceRefused        .reason (a RefusalReason)
    │   ├── ResourceCancelled      cancelled on this side
    │   ├── ResourceCancelledByPeer
    │   ├── ResourceInterrupted    the peer did not come back within the resume window
    │   ├── InvalidResourceName    (also a ValueError) empty or longer than 255 bytes
    │   └── ResourceFailed         .detail (I/O, integrity check, protocol)
    ├── CallbackFailed         a callback of the app failed unexpectedly; .detail
    └── InternalError          a bug in the library (a panic); .detail

A plain :class:`MultipeerError` carries any other failure, with its message.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Type

from . import _ffi
from ._ffi import RefusalReason

__all__ = [
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
    "RefusalReason",
    "from_ffi",
]


def _restore(cls: Type[MultipeerError], message: str, fields: Dict[str, Any]) -> MultipeerError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


class MultipeerError(Exception):
    """The base of every error of ``multipeer``; ``str(error)`` says what happened."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    def __reduce__(self) -> Any:
        # Pickle the message and the attributes, whatever the subclass's constructor takes.
        return (_restore, (type(self), str(self), dict(self.__dict__)))


class InvalidConfig(MultipeerError, ValueError):
    """A setting is invalid; :attr:`detail` says what is wrong and what is allowed."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid configuration: {detail}")
        self.detail = detail


class InvalidIdentity(MultipeerError, ValueError):
    """The identity bytes are not a valid key."""

    def __init__(self) -> None:
        super().__init__("invalid identity")


class InvalidPeerId(MultipeerError, ValueError):
    """:attr:`id` is not a peer id (64 hex characters)."""

    def __init__(self, id: str) -> None:
        super().__init__(f"not a peer id: {id!r}")
        self.id = id


class InvalidTicket(MultipeerError, ValueError):
    """The ticket is not valid for this session."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid ticket: {detail}")
        self.detail = detail


class StartFailed(MultipeerError):
    """The session could not start."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot start: {detail}")
        self.detail = detail


class DiscoveryFailed(MultipeerError):
    """Discovery failed."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"discovery: {detail}")
        self.detail = detail


class SessionClosed(MultipeerError):
    """The session has shut down; nothing more can be done with it."""

    def __init__(self) -> None:
        super().__init__("the session has shut down")


class NotConnected(MultipeerError):
    """:attr:`peer` is not connected."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"peer {peer} is not connected")
        self.peer = peer


class MessageTooLarge(MultipeerError):
    """A message of :attr:`size` bytes exceeds the limit :attr:`max` (4 MiB for reliable messages)."""

    def __init__(self, size: int, max: int) -> None:
        super().__init__(self._describe(size, max))
        self.size = size
        self.max = max

    @staticmethod
    def _describe(size: int, max: int) -> str:
        return f"message is {size} bytes; at most {max}"


class DatagramTooLarge(MessageTooLarge):
    """An unreliable message of :attr:`size` bytes does not fit the path, which carries :attr:`max` now."""

    @staticmethod
    def _describe(size: int, max: int) -> str:
        return f"datagram is {size} bytes; the path allows {max}"


class NotDelivered(MultipeerError):
    """A message for several peers reached :attr:`delivered` but not :attr:`failed` (each was tried once)."""

    def __init__(self, delivered: List[str], failed: List[str], detail: str) -> None:
        super().__init__(detail)
        self.delivered = list(delivered)
        self.failed = list(failed)
        self.detail = detail


class ConnectionLost(MultipeerError):
    """The connection to :attr:`peer` was lost."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"connection to {peer} lost")
        self.peer = peer


class StreamClosed(MultipeerError):
    """The stream was finished or cancelled already."""

    def __init__(self) -> None:
        super().__init__("the stream is closed")


class StreamIOError(MultipeerError):
    """An I/O error on a stream."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"stream: {detail}")
        self.detail = detail


class NotNearby(MultipeerError):
    """Discovery does not see :attr:`peer` nearby (so it cannot be invited)."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"peer {peer} is not nearby")
        self.peer = peer


class InvitationError(MultipeerError):
    """An invitation did not lead to the peer joining."""


class InvitationDeclined(InvitationError):
    """:attr:`peer`'s app declined the invitation."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"peer {peer} declined the invitation")
        self.peer = peer


class InvitationTimedOut(InvitationError, TimeoutError):
    """:attr:`peer`'s app did not answer the invitation in time, or no answer came back."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"no answer to the invitation from {peer}")
        self.peer = peer


class AnswerExpired(MultipeerError):
    """An invitation or a resource offer can no longer be answered: it timed out, the asking peer gave up, or
    it was answered already."""

    def __init__(self) -> None:
        super().__init__("it can no longer be answered")


class ResourceError(MultipeerError):
    """A resource (file) transfer failed."""


class ResourceRefused(ResourceError):
    """The receiver refused the resource; :attr:`reason` is a :class:`RefusalReason`."""

    def __init__(self, reason: RefusalReason) -> None:
        label = {
            RefusalReason.DECLINED: "declined",
            RefusalReason.TOO_LARGE: "too large",
            RefusalReason.BUSY: "busy",
            RefusalReason.UNAVAILABLE: "cannot store it",
        }.get(reason, str(reason))
        super().__init__(f"the receiver refused the resource: {label}")
        self.reason = reason


class ResourceCancelled(ResourceError):
    """The transfer was cancelled on this side."""

    def __init__(self) -> None:
        super().__init__("the resource transfer was cancelled")


class ResourceCancelledByPeer(ResourceError):
    """The peer cancelled the transfer."""

    def __init__(self) -> None:
        super().__init__("the peer cancelled the resource transfer")


class ResourceInterrupted(ResourceError):
    """The connection was lost and the peer did not come back within the resume window."""

    def __init__(self) -> None:
        super().__init__("the resource transfer was interrupted: the peer did not come back in time")


class InvalidResourceName(ResourceError, ValueError):
    """The resource name is empty or longer than 255 bytes."""

    def __init__(self) -> None:
        super().__init__("invalid resource name: must be 1-255 bytes")


class ResourceFailed(ResourceError):
    """The transfer failed otherwise: reading or writing the file, the integrity check (the data received did
    not match the sender's SHA-256 and was discarded) or a protocol violation."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"resource transfer failed: {detail}")
        self.detail = detail


class CallbackFailed(MultipeerError):
    """A callback of the app failed unexpectedly."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"callback failed: {detail}")
        self.detail = detail


class InternalError(MultipeerError):
    """A bug in the library (the native code panicked); please report it with :attr:`detail`."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"internal error: {detail}")
        self.detail = detail


_E: Any = _ffi.MultipeerError  # its variants are attached at run time

# Each variant of the native error and how it becomes a Python exception.
_MAPPING: Dict[Any, Callable[[Any], MultipeerError]] = {
    _E.InvalidConfig: lambda e: InvalidConfig(e.detail),
    _E.InvalidIdentity: lambda e: InvalidIdentity(),
    _E.InvalidPeerId: lambda e: InvalidPeerId(e.id),
    _E.InvalidTicket: lambda e: InvalidTicket(e.detail),
    _E.Start: lambda e: StartFailed(e.detail),
    _E.Discovery: lambda e: DiscoveryFailed(e.detail),
    _E.SessionClosed: lambda e: SessionClosed(),
    _E.NotConnected: lambda e: NotConnected(e.peer),
    _E.MessageTooLarge: lambda e: MessageTooLarge(e.size, e.max),
    _E.DatagramTooLarge: lambda e: DatagramTooLarge(e.size, e.max),
    _E.NotDelivered: lambda e: NotDelivered(e.delivered, e.failed, e.detail),
    _E.ConnectionLost: lambda e: ConnectionLost(e.peer),
    _E.StreamClosed: lambda e: StreamClosed(),
    _E.Io: lambda e: StreamIOError(e.detail),
    _E.Other: lambda e: MultipeerError(e.detail),
    _E.ResourceRefused: lambda e: ResourceRefused(e.reason),
    _E.ResourceCancelled: lambda e: ResourceCancelled(),
    _E.ResourceCancelledByPeer: lambda e: ResourceCancelledByPeer(),
    _E.ResourceInterrupted: lambda e: ResourceInterrupted(),
    _E.InvalidResourceName: lambda e: InvalidResourceName(),
    _E.ResourceFailed: lambda e: ResourceFailed(e.detail),
    _E.InvitationDeclined: lambda e: InvitationDeclined(e.peer),
    _E.InvitationTimedOut: lambda e: InvitationTimedOut(e.peer),
    _E.AnswerExpired: lambda e: AnswerExpired(),
    _E.NotNearby: lambda e: NotNearby(e.peer),
    _E.Callback: lambda e: CallbackFailed(e.detail),
}


def from_ffi(error: BaseException) -> MultipeerError:
    """The :class:`MultipeerError` for an error raised by the native bindings (passed through if it is one)."""
    if isinstance(error, MultipeerError):
        return error
    if isinstance(error, _ffi.InternalError):
        return InternalError(str(error))
    convert = _MAPPING.get(type(error))
    if convert is not None:
        return convert(error)
    # A variant newer than this module: keep its message.
    return MultipeerError(f"{type(error).__name__}: {error}")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Raises errors of the native bindings as :class:`MultipeerError` subclasses."""
    try:
        yield
    except (_ffi.MultipeerError, _ffi.InternalError) as e:
        raise from_ffi(e) from None


def _from_optional(error: Optional[BaseException]) -> Optional[MultipeerError]:
    return None if error is None else from_ffi(error)
