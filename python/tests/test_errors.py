"""Every error of the native library becomes one class of the one Python hierarchy."""

from __future__ import annotations

import pickle
from typing import Any, Dict, List, Tuple, Type

import pytest

import multipeer
from multipeer import _ffi as ffi  # the generated bindings
from multipeer import errors

F = ffi.MultipeerError
PEER = "ab" * 32

# (native error, Python class, attributes it must carry, words its message must contain)
CASES: List[Tuple[Any, Type[multipeer.MultipeerError], Dict[str, Any], str]] = [
    (
        F.InvalidConfig("max_peers 9"),
        errors.InvalidConfig,
        {"detail": "max_peers 9"},
        "invalid configuration: max_peers",
    ),
    (F.InvalidIdentity(), errors.InvalidIdentity, {}, "invalid identity"),
    (F.InvalidPeerId("zz"), errors.InvalidPeerId, {"id": "zz"}, "not a peer id"),
    (F.InvalidTicket("bad"), errors.InvalidTicket, {"detail": "bad"}, "invalid ticket: bad"),
    (F.Start("no socket"), errors.StartFailed, {"detail": "no socket"}, "cannot start: no socket"),
    (F.Discovery("mdns"), errors.DiscoveryFailed, {"detail": "mdns"}, "discovery: mdns"),
    (F.SessionClosed(), errors.SessionClosed, {}, "shut down"),
    (F.NotConnected(PEER), errors.NotConnected, {"peer": PEER}, "is not connected"),
    (F.MessageTooLarge(5, 4), errors.MessageTooLarge, {"size": 5, "max": 4}, "message is 5 bytes; at most 4"),
    (F.DatagramTooLarge(2000, 1200), errors.DatagramTooLarge, {"size": 2000, "max": 1200}, "datagram is 2000 bytes"),
    (
        F.NotDelivered(["a"], ["b"], "b: connection lost"),
        errors.NotDelivered,
        {"delivered": ["a"], "failed": ["b"], "detail": "b: connection lost"},
        "b: connection lost",
    ),
    (F.ConnectionLost(PEER), errors.ConnectionLost, {"peer": PEER}, "lost"),
    (F.StreamClosed(), errors.StreamClosed, {}, "the stream is closed"),
    (F.Io("reset"), errors.StreamIOError, {"detail": "reset"}, "stream: reset"),
    (F.Other("odd"), errors.MultipeerError, {}, "odd"),
    (
        F.ResourceRefused(ffi.RefusalReason.TOO_LARGE),
        errors.ResourceRefused,
        {"reason": multipeer.RefusalReason.TOO_LARGE},
        "too large",
    ),
    (F.ResourceCancelled(), errors.ResourceCancelled, {}, "cancelled"),
    (F.ResourceCancelledByPeer(), errors.ResourceCancelledByPeer, {}, "the peer cancelled"),
    (F.ResourceInterrupted(), errors.ResourceInterrupted, {}, "interrupted"),
    (F.InvalidResourceName(), errors.InvalidResourceName, {}, "1-255 bytes"),
    (F.ResourceFailed("sha mismatch"), errors.ResourceFailed, {"detail": "sha mismatch"}, "sha mismatch"),
    (F.InvitationDeclined(PEER), errors.InvitationDeclined, {"peer": PEER}, "declined"),
    (F.InvitationTimedOut(PEER), errors.InvitationTimedOut, {"peer": PEER}, "no answer"),
    (F.AnswerExpired(), errors.AnswerExpired, {}, "no longer be answered"),
    (F.NotNearby(PEER), errors.NotNearby, {"peer": PEER}, "not nearby"),
    (F.Callback("boom"), errors.CallbackFailed, {"detail": "boom"}, "callback failed: boom"),
    (ffi.InternalError("panicked"), errors.InternalError, {"detail": "panicked"}, "panicked"),
]


@pytest.mark.parametrize("native,cls,fields,message", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_each_native_error_is_mapped(native: Any, cls: type, fields: Dict[str, Any], message: str) -> None:
    mapped = errors.from_ffi(native)
    assert type(mapped) is cls
    assert isinstance(mapped, multipeer.MultipeerError)
    for name, value in fields.items():
        assert getattr(mapped, name) == value
    assert message in str(mapped)
    # Raised through the translation every call goes through, without the native error chained on.
    with pytest.raises(cls) as info:
        with errors._translated():
            raise native
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_every_native_variant_has_a_case() -> None:
    variants = {name for name, value in vars(F).items() if isinstance(value, type) and issubclass(value, BaseException)}
    covered = {type(native).__name__ for native, _, _, _ in CASES if isinstance(native, F)}
    assert variants == covered, f"unmapped native errors: {variants - covered}"


def test_a_newer_variant_keeps_its_message() -> None:
    class Future(F):  # type: ignore[misc, valid-type]
        pass

    mapped = errors.from_ffi(Future("what happened"))
    assert type(mapped) is multipeer.MultipeerError
    assert "what happened" in str(mapped)


def test_hierarchy() -> None:
    assert issubclass(multipeer.InvalidConfig, ValueError)
    assert issubclass(multipeer.InvalidPeerId, ValueError)
    assert issubclass(multipeer.InvalidResourceName, ValueError)
    assert issubclass(multipeer.InvitationTimedOut, TimeoutError)
    assert issubclass(multipeer.DatagramTooLarge, multipeer.MessageTooLarge)
    for cls in (multipeer.InvitationDeclined, multipeer.InvitationTimedOut):
        assert issubclass(cls, multipeer.InvitationError)
    for cls in (
        multipeer.ResourceRefused,
        multipeer.ResourceCancelled,
        multipeer.ResourceCancelledByPeer,
        multipeer.ResourceInterrupted,
        multipeer.InvalidResourceName,
        multipeer.ResourceFailed,
    ):
        assert issubclass(cls, multipeer.ResourceError)
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, multipeer.MultipeerError), name
            assert getattr(multipeer, name) is value, name


@pytest.mark.parametrize("native,cls,fields,message", CASES[:16], ids=[type(c[0]).__name__ for c in CASES[:16]])
def test_errors_pickle(native: Any, cls: type, fields: Dict[str, Any], message: str) -> None:
    mapped = errors.from_ffi(native)
    copy = pickle.loads(pickle.dumps(mapped))
    assert type(copy) is cls and str(copy) == str(mapped)
    for name, value in fields.items():
        assert getattr(copy, name) == value


def test_errors_raised_by_calls_are_mapped() -> None:
    # A real call into the library: a string that is not a peer id.
    import asyncio

    async def main() -> None:
        async with multipeer.Session.start("Alice", "chat", network=multipeer.InProcessNetwork()) as session:
            with pytest.raises(multipeer.InvalidPeerId) as info:
                await session.send(b"x", to="not-a-peer")
            assert info.value.id == "not-a-peer"
            with pytest.raises(multipeer.NotConnected) as closed:
                await session.send(b"x", to=PEER)
            assert closed.value.peer == PEER
        with pytest.raises(multipeer.SessionClosed):
            await session.send(b"x")

    asyncio.run(asyncio.wait_for(main(), 30))
