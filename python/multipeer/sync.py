"""The blocking API, modelled on the Pythonista ``multipeer`` module: :class:`MultipeerConnectivity`."""

from __future__ import annotations

import json
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar, Union, cast

from . import _ffi, _lifetime, _runner
from ._bridge import Names
from ._config import build_config, encode_json
from ._lifetime import Lifetime
from ._log import logger
from ._types import PeerId, peer_ids_of
from .errors import MultipeerError, SessionClosed, _translated

__all__ = ["MultipeerConnectivity"]

STREAM_NAME = "stream"
"""The name of the byte stream :meth:`MultipeerConnectivity.stream` opens to each peer."""

PeerIds = Union[None, str, Iterable[str]]
_Self = TypeVar("_Self", bound="MultipeerConnectivity")


class _CallbacksAfterConstruction(type):
    """Lets the callbacks of an instance run only once its whole ``__init__`` chain has returned, subclasses'
    included, so that they can rely on attributes set after ``super().__init__(...)``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = cast(Any, cls).__new__(cls, *args, **kwargs)  # as type.__call__ does
        if isinstance(instance, cls):
            try:
                instance.__init__(*args, **kwargs)
            finally:
                ready = instance.__dict__.get("_ready")
                if ready is not None:
                    ready.set()
        return instance


class MultipeerConnectivity(metaclass=_CallbacksAfterConstruction):
    """Multipeer communications, the blocking way. Subclass it to react to peers joining and leaving and to
    process what they send; every instance starts looking for peers at once::

        class Chat(multipeer.MultipeerConnectivity):
            def receive(self, message, from_peer):
                print(from_peer.display_name, ":", message)

        mc = Chat(display_name="Alice", service_type="chat")
        try:
            while True:
                mc.send(input())
        finally:
            mc.end_all()

    Arguments:

    - ``display_name``: this peer's name as the others see it (e.g. a player name): 1-63 bytes of UTF-8,
      without control characters.
    - ``service_type``: only peers of the same service type connect: 1-15 characters of a-z, 0-9 and '-', no
      leading, trailing or double '-'.
    - ``initial_data``: any JSON-serialisable value the peers can read with :meth:`get_initial_data`.
    - ``discovery_info``, ``max_peers`` (2-8), ``passphrase``: as for :meth:`multipeer.Session.start`.
    - ``network``: a :class:`multipeer.InProcessNetwork` to meet only sessions of this process on it.

    Invalid values raise :class:`~multipeer.errors.InvalidConfig` (a ``ValueError``) before anything starts.
    This API sends and receives messages and byte streams; files that peers offer are declined (use
    :class:`multipeer.Session` for files, named and two-way streams, and invitations).

    **Callbacks** (:meth:`peer_added`, :meth:`peer_removed`, :meth:`receive`, :meth:`stream_receive`) are
    called on one thread of this session, one at a time and in order, never concurrently with each other and
    never on the thread that created the instance. Guard state they share with other threads with a lock. They
    start once the instance is constructed, your subclass's ``__init__`` included (so they may use attributes
    it sets after ``super().__init__(...)``; do not wait for a callback inside ``__init__``). A callback may
    call the methods of this class (``send`` in ``receive`` to answer, for example). An exception a callback
    raises is logged to the ``"multipeer"`` logger and the next callback runs normally. While a callback
    runs, the session holds further messages back (and slows the senders down): return promptly. The
    defaults print what they get.

    **Peer ids** are :class:`~multipeer.PeerId` objects: strings (the peer's 64-hex id) with a
    ``display_name`` attribute. Names are not unique; ids are.

    **Lifetime**: :meth:`end_all` when done (or use ``with``); Ctrl-C in :meth:`wait` ends the session
    cleanly. A session that is garbage-collected without :meth:`end_all`, or still open when the interpreter
    exits, says goodbye too: its peers see it leave.
    """

    my_id: PeerId
    """This peer's id (with :attr:`display_name`)."""

    def __init__(
        self,
        display_name: str = "Peer",
        service_type: str = "dev-srv",
        initial_data: Any = None,
        *,
        discovery_info: Optional[Dict[str, str]] = None,
        max_peers: int = 8,
        passphrase: Optional[str] = None,
        network: Optional[_ffi.InProcessNetwork] = None,
    ) -> None:
        config = build_config(
            display_name,
            service_type,
            initial_data=initial_data,
            discovery_info=discovery_info,
            max_peers=max_peers,
            passphrase=passphrase,
            resource_acceptance="manual",  # this API receives no files: every offer is declined
        )
        self.display_name = display_name
        """This peer's display name."""
        self.service_type = service_type
        """The service type it looks for."""
        self.initial_data = initial_data
        """What the peers get from :meth:`get_initial_data` for this peer."""
        self._closed = False
        self._ended = threading.Event()
        self._ready = threading.Event()
        self._initial: Dict[str, Any] = {}
        self._streams: Dict[str, Any] = {}
        self._streams_lock = threading.Lock()
        self._stream_writes = threading.Lock()
        self._native: Any = None
        self._lifetime = Lifetime()
        delegate = _SyncDelegate(weakref.ref(self), self._ready, self._ended, self._lifetime)
        self._lifetime.watch(delegate)
        try:
            with _translated():
                if network is not None:
                    self._native = _ffi.Session.in_process(config, delegate, network)
                else:
                    self._native = _ffi.Session(config, delegate)
        except BaseException:
            self._lifetime.unwatch()
            raise
        del delegate
        local = self._native.local_peer()
        self.my_id = PeerId(local.id, local.display_name)
        _lifetime.register(self)
        # Callbacks that arrive meanwhile wait until the instance is constructed (see the metaclass).

    # Callbacks to override

    def peer_added(self, peer_id: PeerId) -> None:
        """Called when a peer joined. Override in a subclass (the default prints it)."""
        print("Added peer", peer_id.display_name)

    def peer_removed(self, peer_id: PeerId) -> None:
        """Called when a peer left. Override in a subclass (the default prints it)."""
        print("Removed peer", peer_id.display_name)

    def receive(self, message: Any, from_peer: PeerId) -> None:
        """Called with each message a peer sent with :meth:`send`, decoded from JSON (a message that is not
        JSON, sent by an app in another language, arrives as ``bytes``). Override in a subclass (the default
        prints it)."""
        print("Message from", from_peer.display_name, "-", message)

    def stream_receive(self, byte_data: bytes, from_peer: PeerId) -> None:
        """Called with the bytes a peer streams with :meth:`stream`, in order; chunk boundaries do not follow
        the sender's calls. Override in a subclass (the default prints them as text)."""
        print("Stream data from", from_peer.display_name, "-", byte_data.decode("utf-8", "replace"))

    # Peers

    def get_peers(self) -> List[PeerId]:
        """The peers connected now, ordered by id."""
        return [PeerId(p.id, p.display_name) for p in self._session.peers()]

    def get_initial_data(self, peer_id: str) -> Any:
        """The ``initial_data`` the peer gave (decoded JSON), or ``None``."""
        key = str.__str__(peer_id)
        if key in self._initial:
            return self._initial[key]
        for p in self._session.peers():
            if p.id == key:
                return _decode(p.initial_data_json)
        return None

    def start_looking_for_peers(self) -> None:
        """Looks for peers again (after :meth:`stop_looking_for_peers`)."""
        self._call(lambda s: s.start_looking_for_peers())

    def stop_looking_for_peers(self) -> None:
        """Stops advertising and admitting new peers, for example while a game runs and no newcomer should
        join; the connected peers stay."""
        self._call(lambda s: s.stop_looking_for_peers())

    # Sending

    def send(self, message: Any, to_peer: PeerIds = None, reliable: bool = True) -> None:
        """Sends ``message``, any JSON-serialisable value, to some or all peers.

        - ``to_peer``: a peer id, a list of peer ids, or ``None`` (the default) for every connected peer.
        - ``reliable``: ``True`` (the default) guarantees delivery, once and in order (up to 4 MiB);
          ``False`` sends a datagram: faster to give up on, may be lost, must be small.

        Blocks until sent. Raises :class:`~multipeer.errors.NotConnected` for a peer that is not connected,
        :class:`~multipeer.errors.NotDelivered` when some of several recipients did not get it, and
        ``TypeError`` for a value that is not JSON-serialisable.
        """
        data = encode_json(message, "message").encode("utf-8")
        recipients = peer_ids_of(to_peer)
        self._call(lambda s: s.send(data, recipients, bool(reliable)))

    def stream(self, byte_data: bytes, to_peer: PeerIds = None) -> None:
        """Streams ``byte_data`` to some or all peers (``to_peer`` as in :meth:`send`), in order after what was
        streamed before; the receivers get it in :meth:`stream_receive`. One stream per peer is opened on the
        first call. Blocks while a receiver is behind (back-pressure)."""
        if not isinstance(byte_data, (bytes, bytearray, memoryview)):
            raise TypeError(f"byte_data must be bytes-like, not {type(byte_data).__name__}; encode text first")
        data = bytes(byte_data)
        recipients = peer_ids_of(to_peer) or [p.id for p in self._session.peers()]
        with self._stream_writes:
            for peer in recipients:
                try:
                    self._write(self._stream_to(peer), data)
                except MultipeerError:
                    self._forget_stream(peer)
                    raise

    def _write(self, stream: Any, data: bytes) -> None:
        self._call(lambda _: stream.write(data))

    def _stream_to(self, peer: str) -> Any:
        with self._streams_lock:
            stream = self._streams.get(peer)
        if stream is None:
            stream = self._call(lambda s: s.open_stream(STREAM_NAME, peer))
            with self._streams_lock:
                self._streams[peer] = stream
        return stream

    def _forget_stream(self, peer: str) -> None:
        with self._streams_lock:
            self._streams.pop(peer, None)

    # Ending

    def disconnect(self) -> None:
        """Leaves the session (the peers see this peer removed at once); :meth:`start_looking_for_peers`
        joins again."""
        self._call(lambda s: s.disconnect())

    def end_all(self) -> None:
        """Ends this session for good: the peers see it removed at once, and further calls raise
        :class:`~multipeer.errors.SessionClosed`. Calling it again does nothing."""
        self._end(timeout=None)

    def _end(self, timeout: Optional[float]) -> None:
        if self._closed:
            return
        self._closed = True
        _lifetime.unregister(self)
        with self._streams_lock:
            self._streams.clear()
        try:
            with _translated():
                _runner.run(lambda: self._native.shutdown(), timeout)
        except SessionClosed:
            pass
        finally:
            self._ended.set()

    def _end_at_exit(self) -> None:
        try:
            self._end(timeout=2.0)
        except BaseException:
            pass
        self._native = None  # release the native session: its callback thread ends

    @property
    def ended(self) -> bool:
        """Whether the session ended (:meth:`end_all`, or the library ended it)."""
        return self._ended.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the session ended (``True``) or ``timeout`` seconds passed (``False``), while the
        callbacks do the work. Ctrl-C ends the session cleanly (:meth:`end_all`) and returns ``True``::

            mc = Echo(display_name="echo", service_type="echo")
            mc.wait()   # serve until Ctrl-C
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                # Short waits, so that Ctrl-C is handled promptly on every platform.
                step = 0.25 if deadline is None else min(0.25, max(0.0, deadline - time.monotonic()))
                if self._ended.wait(step):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except KeyboardInterrupt:
            self.end_all()
            return True

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.end_all()

    # Internals

    @property
    def _session(self) -> Any:
        native = getattr(self, "_native", None)
        if self._closed or native is None:
            raise SessionClosed()
        return native

    def _call(self, make: Callable[[Any], Any]) -> Any:
        session = self._session
        with _translated():
            return _runner.run(lambda: make(session))

    def __repr__(self) -> str:
        state = "ended" if self._closed else "open"
        return f"<{type(self).__name__} {self.display_name!r} {self.service_type!r} {state}>"


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


class _SyncDelegate(_ffi.SessionDelegate):
    """Calls the overridable methods of a :class:`MultipeerConnectivity` on the session's callback thread.

    It holds the instance weakly, so that releasing the instance releases the native session (which says
    goodbye to the peers)."""

    def __init__(
        self,
        owner: "weakref.ref[MultipeerConnectivity]",
        ready: threading.Event,
        ended: threading.Event,
        lifetime: Lifetime,
    ) -> None:
        self._owner = owner
        self._ready = ready
        self._ended = ended
        self._lifetime = lifetime
        self._names = Names()

    def _dispatch(self, name: str, call: Callable[[MultipeerConnectivity], None]) -> None:
        self._ready.wait()
        owner = self._owner()
        if owner is None:
            return
        try:
            call(owner)
        except Exception:
            logger.exception("multipeer: the %s callback of %r raised", name, owner)

    def peer_added(self, peer: Any) -> None:
        self._names.learn(peer.id, peer.display_name)
        initial = _decode(peer.initial_data_json)

        def call(owner: MultipeerConnectivity) -> None:
            owner._initial[peer.id] = initial
            owner.peer_added(PeerId(peer.id, peer.display_name))

        self._dispatch("peer_added", call)

    def peer_removed(self, peer: Any, reason: str) -> None:
        def call(owner: MultipeerConnectivity) -> None:
            owner._forget_stream(peer.id)
            owner.peer_removed(PeerId(peer.id, peer.display_name))

        self._dispatch("peer_removed", call)

    def received(self, peer: str, data: bytes, reliable: bool) -> None:
        raw = bytes(data)
        try:
            message: Any = json.loads(raw.decode("utf-8"))
        except ValueError:
            message = raw
        sender = self._names.peer(peer)
        self._dispatch("receive", lambda owner: owner.receive(message, sender))

    def stream_data(self, peer: str, name: str, data: bytes) -> None:
        sender = self._names.peer(peer)
        chunk = bytes(data)
        self._dispatch("stream_receive", lambda owner: owner.stream_receive(chunk, sender))

    def session_ended(self, reason: str) -> None:
        self._ended.set()
        self._lifetime.ended.set()

    def peer_found(self, peer: Any) -> None:
        self._names.learn(peer.id, peer.display_name)

    def peer_lost(self, peer: Any) -> None:
        pass

    def invitation_received(self, invitation: Any) -> None:
        pass  # automatic invitations only: nothing to answer

    def stream_finished(self, peer: str, name: str, error: Optional[str]) -> None:
        pass

    def duplex_stream_received(self, stream: Any) -> None:
        stream.cancel()  # not offered by this API

    def discovery_state_changed(self, state: Any) -> None:
        pass

    def connection_failed(self, peer: str, reason: str) -> None:
        pass

    def resource_started(self, transfer: Any) -> None:
        pass

    def resource_finished(self, transfer: Any, path: Optional[str], error: Any) -> None:
        pass

    def resource_offered(self, offer: Any) -> None:
        try:
            offer.decline()  # this API receives no files
        except Exception:
            pass
