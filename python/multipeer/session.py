"""The asyncio API: :class:`Session`."""

from __future__ import annotations

import asyncio
import os
import weakref
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Generator,
    Iterable,
    List,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
)

from . import _ffi, _lifetime, _runner
from ._bridge import AsyncDelegate, EventChannel, Names
from ._config import build_config, encode_json
from ._ffi import CongestionControl, InvitationMode, ResourceAcceptance
from ._handles import DuplexStream, OutgoingStream, ResourceTransfer
from ._lifetime import Lifetime
from ._types import NearbyPeer, Peer, PeerId, PeerLike, peer_id_of, peer_ids_of
from .errors import SessionClosed, _translated
from .events import Event, SessionEnded

__all__ = ["Session", "InProcessNetwork"]

InProcessNetwork = _ffi.InProcessNetwork
"""Sessions started with the same in-process network find each other over loopback, without multicast
(tests, demos): ``network = multipeer.InProcessNetwork()``, then ``Session.start(..., network=network)``."""

Recipients = Union[None, PeerLike, Iterable[PeerLike]]

DEFAULT_MAX_EVENTS = 1024
_Self = TypeVar("_Self", bound="Session")


class Session:
    """A multipeer session for asyncio: find peers of the same ``service_type`` nearby and talk to them.

    Start it with :meth:`start`, either awaited or as an async context manager; leaving the ``async with``
    block shuts the session down, and the peers see it leave at once::

        async with multipeer.Session.start("Alice", "chat") as session:
            async for event in session.events():
                if isinstance(event, multipeer.PeerAdded):
                    await session.send_json({"hello": event.peer.display_name}, to=event.peer)
                elif isinstance(event, multipeer.Message):
                    print(event.peer.display_name, event.json())

    ``session = await multipeer.Session.start(...)`` works too; then call :meth:`shutdown` (or use
    ``async with session:``). A session that is garbage-collected without it still says goodbye (its peers
    see it as ``"left"``), and any session still open when the interpreter exits is shut down then.

    Events arrive in order through :meth:`events`. At most ``max_events`` wait for the app at a time; while
    that many wait, the session stops delivering (and, through QUIC flow control, slows the senders down)
    until the app reads on. Read events promptly, or pass ``max_events=0`` for an unbounded queue.

    Every method must be called on the event loop the session was started on. Errors are raised as
    :class:`~multipeer.errors.MultipeerError` subclasses.
    """

    local_peer: Peer
    """This peer (its id, display name and initial data)."""
    _native: Any
    _channel: EventChannel
    _names: Names
    _lifetime: Lifetime
    _closed: bool
    _ended: bool

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError(
            "start a session with `await multipeer.Session.start(...)` or `async with multipeer.Session.start(...)`"
        )

    @classmethod
    def start(
        cls,
        display_name: str,
        service_type: str,
        *,
        initial_data: Any = None,
        discovery_info: Optional[Mapping[str, str]] = None,
        max_peers: int = 8,
        passphrase: Optional[str] = None,
        identity: Optional[bytes] = None,
        invitation_mode: Union[str, InvitationMode] = "auto",
        resource_acceptance: Union[str, ResourceAcceptance] = "auto",
        resource_directory: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_resource_size: Optional[int] = None,
        max_resource_bytes_per_peer: Optional[int] = None,
        overwrite_resources: bool = False,
        idle_timeout: Optional[float] = None,
        resume_window: Optional[float] = None,
        answer_timeout: Optional[float] = None,
        congestion_control: Union[str, CongestionControl] = "cubic",
        network: Optional[InProcessNetwork] = None,
        discovery: Optional[_ffi.ForeignDiscovery] = None,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> "_Starting":
        """Starts a session; await the result, or use it as an async context manager.

        - ``display_name``: the name others see, 1-63 bytes of UTF-8 without control characters.
        - ``service_type``: only peers of the same service type meet; 1-15 characters of a-z, 0-9 and '-'
          (no leading, trailing or double '-').
        - ``initial_data``: any JSON-serialisable value every peer receives when it connects
          (:attr:`Peer.initial_data <multipeer.Peer.initial_data>`; at most 16 KiB as JSON).
        - ``discovery_info``: key/value strings published with discovery (at most 8 entries, 400 bytes).
        - ``max_peers``: most peers in the session including this one, 2-8.
        - ``passphrase``: admit only peers that know it.
        - ``identity``: a saved identity (:func:`multipeer.generate_identity`) to keep the same peer id.
        - ``invitation_mode``: ``"auto"`` (everyone found joins) or ``"manual"`` (nobody joins until the app
          calls :meth:`invite` and the other app accepts its :class:`~multipeer.InvitationReceived`).
        - ``resource_acceptance``: ``"auto"`` (files within the limits are received) or ``"manual"`` (each
          offer arrives as :class:`~multipeer.ResourceOffered` for the app to accept or decline).
        - ``resource_directory``: where received files are saved (private to the user; created if missing).
        - ``max_resource_size``, ``max_resource_bytes_per_peer``: limits in bytes for received files.
        - ``overwrite_resources``: replace an existing file of the same name instead of saving ``name (1).ext``.
        - ``idle_timeout``, ``resume_window``, ``answer_timeout``: in seconds.
        - ``congestion_control``: ``"cubic"`` (default) or ``"bbr"`` (keeps lossy Wi-Fi fast).
        - ``network``: an :class:`InProcessNetwork` to meet only sessions of this process on it (tests, demos);
          ``discovery``: a discovery implemented by the app. Neither: mDNS on the local network.
        - ``max_events``: how many events may wait for the app (see the class); ``0`` for no bound.

        Invalid settings raise :class:`~multipeer.errors.InvalidConfig` (a ``ValueError``) at once, before
        anything starts.
        """
        if network is not None and discovery is not None:
            raise ValueError("pass network= or discovery=, not both")
        config = build_config(
            display_name,
            service_type,
            initial_data=initial_data,
            discovery_info=discovery_info,
            max_peers=max_peers,
            passphrase=passphrase,
            identity=identity,
            invitation_mode=invitation_mode,
            resource_acceptance=resource_acceptance,
            resource_directory=resource_directory,
            max_resource_size=max_resource_size,
            max_resource_bytes_per_peer=max_resource_bytes_per_peer,
            overwrite_resources=overwrite_resources,
            idle_timeout=idle_timeout,
            resume_window=resume_window,
            answer_timeout=answer_timeout,
            congestion_control=congestion_control,
        )
        return _Starting(cls._create(config, network, discovery, max_events))

    @classmethod
    async def _create(
        cls,
        config: _ffi.SessionConfig,
        network: Optional[InProcessNetwork],
        discovery: Optional[_ffi.ForeignDiscovery],
        max_events: int,
    ) -> "Session":
        loop = asyncio.get_running_loop()
        channel = EventChannel(loop, max_events)
        names = Names()
        lifetime = Lifetime()
        delegate = AsyncDelegate(channel, names, lifetime)
        lifetime.watch(delegate)
        try:
            with _translated():
                if network is not None:
                    native = await _ffi.Session.create_in_process(config, delegate, network)
                elif discovery is not None:
                    native = await _ffi.Session.create_with_discovery(config, delegate, discovery)
                else:
                    native = await _ffi.Session.create(config, delegate)
        except BaseException:
            lifetime.unwatch()
            raise
        del delegate  # the native session holds it; exit handling watches for its release
        self = cls.__new__(cls)
        self._native = native
        self._channel = channel
        self._names = names
        self._lifetime = lifetime
        self._closed = False
        self._ended = False
        local = native.local_peer()
        self.local_peer = Peer._from_ffi(local)
        # Released without shutdown(): stop delivering events nobody can read (the native session says goodbye).
        weakref.finalize(self, channel.drop).atexit = False
        _lifetime.register(self)
        return self

    # Lifetime

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.shutdown()

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

    async def shutdown(self) -> None:
        """Leaves the session (the peers see it leave at once) and releases everything. Later calls raise
        :class:`~multipeer.errors.SessionClosed`; calling it again does nothing. The event iteration ends with
        :class:`~multipeer.SessionEnded`."""
        if self._closed:
            return
        self._closed = True
        _lifetime.unregister(self)
        self._channel.unbound()
        try:
            with _translated():
                await self._native.shutdown()
        except SessionClosed:
            pass

    def _end_at_exit(self) -> None:
        self._channel.drop()
        if not self._closed:
            self._closed = True
            native = self._native
            try:
                _runner.run(native.shutdown, timeout=2.0)
            except BaseException:
                pass
        self._native = None  # release the native session: its callback thread ends

    @property
    def _session(self) -> Any:
        if self._closed or self._native is None:
            raise SessionClosed()
        return self._native

    # Events

    def events(self) -> AsyncIterator[Event]:
        """The session's events, in order, ending after :class:`~multipeer.SessionEnded`.

        Each event is delivered once: iterate in one place (or hand events on yourself). Leaving an ``async
        for`` loop and iterating again later goes on where it stopped.
        """
        return _Events(self)

    async def next_event(self, timeout: Optional[float] = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (``asyncio.TimeoutError`` after that).
        Raises :class:`~multipeer.errors.SessionClosed` once :class:`~multipeer.SessionEnded` was delivered."""
        if self._ended:
            raise SessionClosed()
        if timeout is None:
            event = await self._channel.get()
        else:
            event = await asyncio.wait_for(self._channel.get(), timeout)
        if isinstance(event, SessionEnded):
            self._ended = True
        return event

    # Peers

    def peers(self) -> List[Peer]:
        """The connected peers, ordered by id."""
        return [Peer._from_ffi(p) for p in self._session.peers()]

    def nearby(self) -> List[NearbyPeer]:
        """The peers discovery sees nearby now, in the session or not, ordered by id."""
        return [NearbyPeer._from_ffi(p) for p in self._session.nearby()]

    def peer(self, peer: PeerLike) -> Optional[Peer]:
        """The connected peer with this id, or ``None``."""
        wanted = peer_id_of(peer)
        return next((p for p in self.peers() if p.id == wanted), None)

    def verification_code(self, peer: PeerLike) -> Optional[str]:
        """A 6-digit code both ends of the connection to ``peer`` compute alike: show it on both screens so
        users can compare. ``None`` when ``peer`` is not connected."""
        with _translated():
            code = self._session.verification_code(peer_id_of(peer))
        return None if code is None else str(code)

    async def invite(self, peer: PeerLike, context: Optional[bytes] = None) -> None:
        """Invites a nearby peer into this session, with ``context`` (at most 1024 bytes) for its app to judge
        the invitation by. Returns once it joined; raises :class:`~multipeer.errors.InvitationDeclined`,
        :class:`~multipeer.errors.InvitationTimedOut` or :class:`~multipeer.errors.NotNearby`. With
        ``invitation_mode="manual"`` this is the only way peers outside the session are dialed."""
        with _translated():
            await self._session.invite(peer_id_of(peer), None if context is None else bytes(context))

    async def stop_looking_for_peers(self) -> None:
        """Stops advertising, browsing and admitting new peers (for example while a game runs); the
        connected peers stay."""
        with _translated():
            await self._session.stop_looking_for_peers()

    async def start_looking_for_peers(self) -> None:
        """Looks for peers again."""
        with _translated():
            await self._session.start_looking_for_peers()

    async def remove_peer(self, peer: PeerLike) -> None:
        """Expels ``peer`` and keeps it out until :meth:`allow_peer`."""
        with _translated():
            await self._session.remove_peer(peer_id_of(peer))

    async def allow_peer(self, peer: PeerLike) -> None:
        """Lets a peer removed with :meth:`remove_peer` join again."""
        with _translated():
            await self._session.allow_peer(peer_id_of(peer))

    async def disconnect(self) -> None:
        """Leaves the session (the peers see it at once); the session object stays usable."""
        with _translated():
            await self._session.disconnect()

    def ticket(self) -> str:
        """A ticket another device can join with (:meth:`connect_ticket`) where multicast is blocked."""
        return str(self._session.ticket())

    async def connect_ticket(self, ticket: str) -> None:
        """Invites the peer a ticket describes."""
        with _translated():
            await self._session.connect_ticket(ticket)

    async def diagnostics(self) -> str:
        """A human-readable report of interfaces, discovery and connection attempts."""
        with _translated():
            return str(await self._session.diagnostics())

    # Messages

    async def send(self, data: bytes, to: Recipients = None, reliable: bool = True) -> None:
        """Sends ``data`` to ``to``: ``None`` for every connected peer, one peer (a :class:`~multipeer.PeerId`,
        id string or :class:`~multipeer.Peer`) or several.

        Reliable messages (the default) arrive once and in order, up to 4 MiB; ``reliable=False`` sends a
        datagram, which may be lost and must fit the path
        (:class:`~multipeer.errors.DatagramTooLarge` otherwise). Every recipient is tried once; if some did
        not get it, :class:`~multipeer.errors.NotDelivered` says which (one recipient:
        :class:`~multipeer.errors.NotConnected` or :class:`~multipeer.errors.ConnectionLost`).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__} (use send_json for values)")
        with _translated():
            await self._session.send(bytes(data), peer_ids_of(to), bool(reliable))

    async def send_json(self, value: Any, to: Recipients = None, reliable: bool = True) -> None:
        """Sends ``value`` as JSON (UTF-8); receivers decode it with :meth:`Message.json
        <multipeer.Message.json>`. ``TypeError`` if it is not JSON-serialisable."""
        await self.send(encode_json(value, "the message").encode("utf-8"), to, reliable)

    # Streams

    async def open_stream(self, name: str, peer: PeerLike) -> OutgoingStream:
        """Opens a byte stream called ``name`` to ``peer``; it receives :class:`~multipeer.StreamChunk` events
        and a :class:`~multipeer.StreamEnded`."""
        with _translated():
            native = await self._session.open_stream(name, peer_id_of(peer))
        return OutgoingStream(native, name, self._peer_id(peer))

    async def open_duplex_stream(self, name: str, peer: PeerLike) -> DuplexStream:
        """Opens a two-way stream called ``name`` with ``peer``; it receives a
        :class:`~multipeer.DuplexStreamReceived` event."""
        with _translated():
            native = await self._session.open_duplex_stream(name, peer_id_of(peer))
        return DuplexStream(native, self._peer_id(peer))

    # Files

    async def send_file(
        self,
        path: Union[str, "os.PathLike[str]"],
        peer: PeerLike,
        name: Optional[str] = None,
    ) -> ResourceTransfer:
        """Sends the file at ``path`` to ``peer`` as a resource called ``name`` (default: the file's name;
        1-255 bytes, the receiver saves it under a sanitized form). Returns once the transfer has started:
        ``async for progress in transfer`` follows it, ``await transfer`` gives the
        :class:`~multipeer.ResourceResult` (with the SHA-256 the receiver checked) or raises why it failed.
        A transfer cut off by a lost connection resumes when the peer is back within the resume window."""
        path = os.fspath(path)
        if name is None:
            name = os.path.basename(path)
        with _translated():
            native = await self._session.send_resource(path, name, peer_id_of(peer))
        return ResourceTransfer(native, self._peer_id(peer))

    def _peer_id(self, peer: PeerLike) -> PeerId:
        if isinstance(peer, PeerId):
            return peer
        if isinstance(peer, (Peer, NearbyPeer)):
            return peer.id
        return self._names.peer(peer_id_of(peer))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<multipeer.Session {self.local_peer.display_name!r} ({self.local_peer.short_id}) {state}>"


class _Events:
    """The iterator :meth:`Session.events` returns."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __aiter__(self) -> "_Events":
        return self

    async def __anext__(self) -> Event:
        if self._session._ended:
            raise StopAsyncIteration
        return await self._session.next_event()


class _Starting:
    """What :meth:`Session.start` returns: await it for the session, or use it with ``async with``."""

    def __init__(self, create: "Any") -> None:
        self._create = create
        self._session: Optional[Session] = None

    def __await__(self) -> Generator[Any, None, Session]:
        return self._start().__await__()

    async def _start(self) -> Session:
        if self._session is None:
            self._session = await self._create
        return self._session

    async def __aenter__(self) -> Session:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._session is not None:
            await self._session.shutdown()

    def __del__(self) -> None:
        # Never awaited: close the coroutine quietly instead of warning about it.
        if self._session is None and hasattr(self._create, "close"):
            self._create.close()
