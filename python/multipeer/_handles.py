"""Handles the asyncio API hands out: streams, resource transfers, invitations and resource offers."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, AsyncIterator, Dict, Generator, Optional, Type

from ._types import PeerId, Progress, ResourceResult
from .errors import StreamClosed, _translated

__all__ = ["OutgoingStream", "DuplexStream", "ResourceTransfer", "Invitation", "ResourceOffer"]

DEFAULT_READ_SIZE = 64 * 1024


def _bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None


class OutgoingStream:
    """A named byte stream to one peer, from :meth:`Session.open_stream`.

    :meth:`write` waits while the receiver is behind (back-pressure); :meth:`finish` ends the stream and waits
    until the receiver has read all of it; :meth:`cancel` abandons it (the receiver sees an error). As an async
    context manager it finishes on a clean exit and cancels on an exception::

        async with await session.open_stream("log", peer) as stream:
            await stream.write(b"line 1\\n")
    """

    def __init__(self, stream: Any, name: str, peer: PeerId) -> None:
        self._stream = stream
        self.name = name
        """The stream's name, as the receiver sees it."""
        self.peer = peer
        """The receiving peer."""
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether it was finished or cancelled."""
        return self._closed

    async def write(self, data: bytes) -> None:
        """Writes all of ``data``; raises :class:`StreamClosed` once finished or cancelled."""
        with _translated():
            await self._stream.write(_bytes(data))

    async def finish(self) -> None:
        """Ends the stream and waits until the receiver has read all of it."""
        self._closed = True
        with _translated():
            await self._stream.finish()

    def cancel(self) -> None:
        """Abandons the stream; the receiver's stream ends with an error."""
        self._closed = True
        self._stream.cancel()

    async def __aenter__(self) -> "OutgoingStream":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is not None:
            self.cancel()
        elif not self._closed:
            await self.finish()

    def __repr__(self) -> str:
        return f"<OutgoingStream {self.name!r} to {self.peer.display_name or self.peer.short_id}>"


class DuplexStream:
    """A two-way named stream with one peer (:meth:`Session.open_duplex_stream`, or the
    :class:`~multipeer.events.DuplexStreamReceived` event on the other side).

    :meth:`read` what the peer writes (``b""`` once it finished), :meth:`write` what it reads; both directions
    have back-pressure. ``async for chunk in stream`` reads until the peer finished. :meth:`finish` ends our
    direction (reading goes on); :meth:`cancel`, or releasing the stream, resets both.
    """

    def __init__(self, stream: Any, peer: PeerId) -> None:
        self._stream = stream
        self.name: str = stream.name()
        """The stream's name."""
        self.peer = peer
        """The peer at the other end."""

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """The next bytes the peer wrote, at most ``max_bytes`` (at most 1 MiB); ``b""`` once it finished."""
        with _translated():
            return bytes(await self._stream.read(max(1, min(int(max_bytes), 1 << 20))))

    async def write(self, data: bytes) -> None:
        """Writes all of ``data`` to the peer."""
        with _translated():
            await self._stream.write(_bytes(data))

    async def finish(self) -> None:
        """Ends our direction and waits until the peer has read all of it; reading goes on."""
        with _translated():
            await self._stream.finish()

    def cancel(self) -> None:
        """Resets both directions."""
        self._stream.cancel()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read()
            if not chunk:
                return
            yield chunk

    async def __aenter__(self) -> "DuplexStream":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is not None:
            self.cancel()
            return
        try:
            await self.finish()
        except StreamClosed:
            pass

    def __repr__(self) -> str:
        return f"<DuplexStream {self.name!r} with {self.peer.display_name or self.peer.short_id}>"


class ResourceTransfer:
    """A resource (file) transfer in either direction: :meth:`Session.send_file` returns one for a file we send,
    :class:`~multipeer.events.ResourceStarted` brings one for a file we receive.

    ``async for progress in transfer`` yields its :class:`Progress` as it changes (sampled every 0.1 s; see
    :meth:`updates`) and ends once it finished; ``await transfer`` (or :meth:`wait`) gives the
    :class:`ResourceResult` or raises why it failed (:class:`~multipeer.errors.ResourceRefused`,
    :class:`~multipeer.errors.ResourceCancelledByPeer`, ...)::

        transfer = await session.send_file("photo.jpg", peer)
        async for progress in transfer:
            print(f"{progress.fraction:.0%}")
        result = await transfer
    """

    def __init__(self, transfer: Any, peer: PeerId) -> None:
        self._transfer = transfer
        self.peer = peer
        """The peer at the other end."""
        self.id: str = transfer.id()
        """The transfer's id, 32 hex characters, the same on both ends."""
        self.name: str = transfer.name()
        """The name the sender gave (the receiver saves it under a sanitized form)."""
        self.size: int = transfer.size()
        """Its size in bytes."""
        self.incoming: bool = transfer.is_incoming()
        """``True`` when a peer sends it to us, ``False`` when we send it."""

    @property
    def progress(self) -> Progress:
        """Progress now."""
        return Progress._from_ffi(self._transfer.progress())

    @property
    def finished(self) -> bool:
        """Whether it finished, delivered or failed (:meth:`wait` then returns at once)."""
        return bool(self._transfer.is_finished())

    async def updates(self, interval: float = 0.1) -> AsyncIterator[Progress]:
        """Yields the progress every ``interval`` seconds while it changes; the last one yielded is the final
        progress, after which the iteration ends (then :meth:`wait` for the outcome)."""
        last: Optional[Progress] = None
        while True:
            done = self.finished  # read first, so that the progress yielded last is the final one
            now = self.progress
            if now != last:
                last = now
                yield now
            if done:
                return
            await asyncio.sleep(interval)

    def __aiter__(self) -> AsyncIterator[Progress]:
        return self.updates()

    async def wait(self) -> ResourceResult:
        """Waits until it finished: the result once delivered (and verified by the receiver), or raises a
        :class:`~multipeer.errors.ResourceError` (or :class:`~multipeer.errors.SessionClosed`)."""
        with _translated():
            return ResourceResult._from_ffi(await self._transfer.finished())

    def __await__(self) -> Generator[Any, None, ResourceResult]:
        return self.wait().__await__()

    def cancel(self) -> None:
        """Cancels it: the peer sees :class:`~multipeer.errors.ResourceCancelledByPeer`; a partial file is
        deleted."""
        self._transfer.cancel()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceTransfer):
            return NotImplemented
        return bool(self._transfer == other._transfer)

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        direction = "from" if self.incoming else "to"
        who = self.peer.display_name or self.peer.short_id
        return f"<ResourceTransfer {self.name!r} ({self.size} bytes) {direction} {who}>"


class Invitation:
    """A peer invites us into its session (invitation mode ``"manual"``). Keep it while the user decides, then
    :meth:`accept` or :meth:`decline` it, from any thread; unanswered, it expires after the answer timeout."""

    def __init__(self, invitation: Any) -> None:
        self._invitation = invitation
        self.display_name: str = invitation.display_name()
        """The inviter's display name."""
        self.peer = PeerId(invitation.peer_id(), self.display_name)
        """The inviter (its id is proved by its certificate)."""
        self.discovery_info: Dict[str, str] = dict(invitation.discovery_info())
        """The inviter's discovery info."""
        context = invitation.context()
        self.context: Optional[bytes] = None if context is None else bytes(context)
        """What the inviter sent with the invitation, if anything."""

    @property
    def expired(self) -> bool:
        """Whether it can no longer be answered (close the dialog that asks about it)."""
        return bool(self._invitation.is_expired())

    def accept(self) -> None:
        """Joins the inviter's session; raises :class:`~multipeer.errors.AnswerExpired` once it timed out, the
        inviter gave up, or it was answered already."""
        with _translated():
            self._invitation.accept()

    def decline(self) -> None:
        """Declines; the inviter is told. Raises :class:`~multipeer.errors.AnswerExpired` like :meth:`accept`."""
        with _translated():
            self._invitation.decline()

    def __repr__(self) -> str:
        return f"<Invitation from {self.display_name!r} ({self.peer.short_id})>"


class ResourceOffer:
    """A peer offers a resource (resource acceptance ``"manual"``). Keep it while the user decides, then
    :meth:`accept` (a :class:`~multipeer.events.ResourceStarted` follows) or :meth:`decline` it, from any
    thread; releasing it unanswered declines."""

    def __init__(self, offer: Any, peer: PeerId) -> None:
        self._offer = offer
        self.peer = peer
        """The offering peer."""
        self.name: str = offer.name()
        """The name it was sent with (it is saved under a sanitized form of it)."""
        self.size: int = offer.size()
        """Its size in bytes."""

    @property
    def expired(self) -> bool:
        """Whether it can no longer be answered."""
        return bool(self._offer.is_expired())

    def accept(self) -> None:
        """Receives it; raises :class:`~multipeer.errors.AnswerExpired` once it timed out, the sender gave up, or
        it was answered already."""
        with _translated():
            self._offer.accept()

    def decline(self) -> None:
        """Declines; the sender's transfer fails with :class:`~multipeer.errors.ResourceRefused`."""
        with _translated():
            self._offer.decline()

    def __repr__(self) -> str:
        return f"<ResourceOffer {self.name!r} ({self.size} bytes) from {self.peer.display_name or self.peer.short_id}>"
