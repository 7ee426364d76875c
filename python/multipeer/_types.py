"""Peers, progress and results: plain Python values made from the native records."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from . import _ffi

__all__ = [
    "PeerId",
    "Peer",
    "NearbyPeer",
    "Progress",
    "ResourceResult",
    "DiscoveryState",
    "PeerLike",
]


class PeerId(str):
    """A peer's id: a ``str`` (64 hex characters, equal to and hashed like the plain id) that also carries the
    peer's :attr:`display_name` and :attr:`short_id`.

    Use it wherever a peer is expected (``send(..., to=peer_id)``); a plain id string works too. Display names
    are not unique: compare ids, not names.
    """

    display_name: str
    """The name the peer chose (not unique)."""

    def __new__(cls, id: str, display_name: str = "") -> "PeerId":
        self = super().__new__(cls, id)
        self.display_name = display_name
        return self

    @property
    def short_id(self) -> str:
        """The first 10 characters of the id, for display."""
        return str.__str__(self)[:10]

    def __getnewargs__(self) -> Tuple[str, str]:  # type: ignore[override]  # pickling and copying keep the name
        return (str.__str__(self), self.display_name)

    def __repr__(self) -> str:
        return f"PeerId({str.__repr__(self)}, display_name={self.display_name!r})"


PeerLike = Union[str, "Peer", "NearbyPeer"]
"""Where a peer is expected: a :class:`PeerId`, a plain id string, a :class:`Peer` or a :class:`NearbyPeer`."""


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Peer:
    """A peer in the session."""

    id: PeerId
    """Its id (with its display name)."""
    display_name: str
    """The name it chose (not unique)."""
    discovery_info: Dict[str, str] = field(default_factory=dict)
    """What it publishes with discovery."""
    initial_data: Any = None
    """The JSON value it gave as ``initial_data`` (decoded), or ``None``."""

    @property
    def short_id(self) -> str:
        """The first 10 characters of the id, for display."""
        return self.id.short_id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def _from_ffi(cls, info: _ffi.PeerInfo) -> "Peer":
        return cls(
            id=PeerId(info.id, info.display_name),
            display_name=info.display_name,
            discovery_info=dict(info.discovery_info),
            initial_data=_json_or_none(info.initial_data_json),
        )


@dataclass(frozen=True)
class NearbyPeer:
    """A peer discovery sees nearby, in the session or not (what it announces, unproved until it joins)."""

    id: PeerId
    """Its id (with its display name)."""
    display_name: str
    """The name it announces."""
    discovery_info: Dict[str, str] = field(default_factory=dict)
    """What it publishes with discovery."""

    @property
    def short_id(self) -> str:
        """The first 10 characters of the id, for display."""
        return self.id.short_id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def _from_ffi(cls, info: _ffi.NearbyPeerInfo) -> "NearbyPeer":
        return cls(
            id=PeerId(info.id, info.display_name),
            display_name=info.display_name,
            discovery_info=dict(info.discovery_info),
        )


@dataclass(frozen=True)
class Progress:
    """How far a resource (file) transfer has come."""

    transferred: int
    """Bytes transferred (after a resumption, counting from where the interrupted attempt stopped)."""
    total: int
    """Size of the resource in bytes."""
    bytes_per_second: float
    """Recent rate (0 while interrupted and once finished)."""

    @property
    def fraction(self) -> float:
        """:attr:`transferred` as a fraction of :attr:`total`, from 0.0 to 1.0."""
        return 1.0 if self.total == 0 else self.transferred / self.total

    @classmethod
    def _from_ffi(cls, p: _ffi.ResourceProgress) -> "Progress":
        return cls(transferred=p.transferred, total=p.total, bytes_per_second=p.bytes_per_second)


@dataclass(frozen=True)
class ResourceResult:
    """A resource (file) delivered and verified."""

    size: int
    """Bytes in the resource."""
    sha256: str
    """SHA-256 of its content, 64 lowercase hex characters, checked by the receiver."""
    path: Optional[str]
    """Where the receiver saved it; ``None`` on the sending side."""
    resumed_from: int
    """Where the last attempt started: not 0 when the transfer resumed after an interruption."""

    @classmethod
    def _from_ffi(cls, r: _ffi.ResourceResult) -> "ResourceResult":
        return cls(size=r.size, sha256=r.sha256, path=r.path, resumed_from=r.resumed_from)


class DiscoveryState(str, enum.Enum):
    """Whether discovery works."""

    RUNNING = "running"
    """Advertising and browsing."""
    STOPPED = "stopped"
    """Stopped by the app (``stop_looking_for_peers``)."""
    PERMISSION_DENIED = "permission_denied"
    """The platform refused it: the app lacks the local-network permission."""
    FAILED = "failed"
    """It failed; the event says why."""

    @classmethod
    def _from_ffi(cls, state: Any) -> "DiscoveryState":
        if state.is_running():
            return cls.RUNNING
        if state.is_stopped():
            return cls.STOPPED
        if state.is_permission_denied():
            return cls.PERMISSION_DENIED
        return cls.FAILED


def peer_id_of(peer: PeerLike) -> str:
    """The id string of anything that names a peer."""
    if isinstance(peer, (Peer, NearbyPeer)):
        return str.__str__(peer.id)
    if isinstance(peer, str):
        return str.__str__(peer)
    raise TypeError(f"a peer must be a PeerId, an id string or a Peer, not {type(peer).__name__}")


def peer_ids_of(to: Union[None, PeerLike, Iterable[PeerLike]]) -> List[str]:
    """The recipients' ids: ``None`` is every connected peer (an empty list for the native call)."""
    if to is None:
        return []
    if isinstance(to, (str, Peer, NearbyPeer)):
        return [peer_id_of(to)]
    ids = [peer_id_of(p) for p in to]
    if not ids:
        raise ValueError("no recipients: pass to=None to send to every connected peer")
    return ids
