"""Settings are checked in Python, with clear ValueErrors, before anything reaches the native library."""

from __future__ import annotations

import asyncio

import pytest

import multipeer

GOOD_SERVICE_TYPES = ["chat", "a", "my-game-2", "abcdefghijklmno", "x1"]
BAD_SERVICE_TYPES = [
    ("", "empty"),
    ("abcdefghijklmnop", "longer than 15"),
    ("Chat", "character other than"),
    ("ch_at", "character other than"),
    ("chät", "character other than"),
    ("-chat", "starts or ends"),
    ("chat-", "starts or ends"),
    ("ch--at", "'--'"),
    ("123", "no letter"),
]
GOOD_DISPLAY_NAMES = ["Alice", "é" * 31, "a" * 63, "Zoë's phone", "🦀 crab"]
BAD_DISPLAY_NAMES = [
    ("", "empty"),
    ("   ", "empty"),
    ("é" * 32, "longer than 63"),
    ("a" * 64, "longer than 63"),
    ("a\nb", "control character"),
    ("tab\there", "control character"),
    ("nul\x00", "control character"),
]


@pytest.mark.parametrize("service_type", GOOD_SERVICE_TYPES)
def test_valid_service_types(service_type: str) -> None:
    assert multipeer.validate_service_type(service_type) == service_type


@pytest.mark.parametrize("service_type,problem", BAD_SERVICE_TYPES)
def test_invalid_service_types(service_type: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid service type") as info:
        multipeer.validate_service_type(service_type)
    assert problem in str(info.value)
    assert "allowed: 1-15 characters of a-z, 0-9 and '-'" in str(info.value)
    assert isinstance(info.value, multipeer.InvalidConfig)
    assert isinstance(info.value, multipeer.MultipeerError)


@pytest.mark.parametrize("name", GOOD_DISPLAY_NAMES)
def test_valid_display_names(name: str) -> None:
    assert multipeer.validate_display_name(name) == name


@pytest.mark.parametrize("name,problem", BAD_DISPLAY_NAMES)
def test_invalid_display_names(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid display name") as info:
        multipeer.validate_display_name(name)
    assert problem in str(info.value)
    assert "1-63 bytes of UTF-8 without control characters" in str(info.value)


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        multipeer.validate_display_name(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        multipeer.validate_service_type(b"chat")  # type: ignore[arg-type]


@pytest.mark.parametrize("service_type,problem", BAD_SERVICE_TYPES[:4])
def test_sync_api_rejects_a_bad_service_type_before_starting(service_type: str, problem: str) -> None:
    network = multipeer.InProcessNetwork()
    with pytest.raises(ValueError, match=problem):
        multipeer.MultipeerConnectivity("Alice", service_type, network=network)


@pytest.mark.parametrize("name,problem", BAD_DISPLAY_NAMES[:4])
def test_sync_api_rejects_a_bad_display_name_before_starting(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        multipeer.MultipeerConnectivity(name, "chat", network=multipeer.InProcessNetwork())


def test_async_api_rejects_bad_settings_when_called() -> None:
    # Raised by Session.start() itself, before anything is awaited or started.
    with pytest.raises(ValueError, match="invalid service type"):
        multipeer.Session.start("Alice", "Bad Service")
    with pytest.raises(ValueError, match="invalid display name"):
        multipeer.Session.start("x" * 64, "chat")
    with pytest.raises(ValueError, match="max_peers"):
        multipeer.Session.start("Alice", "chat", max_peers=9)
    with pytest.raises(ValueError, match="invitation_mode 'sometimes' is not one of 'auto', 'manual'"):
        multipeer.Session.start("Alice", "chat", invitation_mode="sometimes")
    with pytest.raises(ValueError, match="congestion_control"):
        multipeer.Session.start("Alice", "chat", congestion_control="reno")
    with pytest.raises(ValueError, match="answer_timeout"):
        multipeer.Session.start("Alice", "chat", answer_timeout=-1)
    with pytest.raises(TypeError, match="initial_data must be JSON-serialisable"):
        multipeer.Session.start("Alice", "chat", initial_data={"when": object()})
    with pytest.raises(ValueError, match="not both"):
        multipeer.Session.start("Alice", "chat", network=multipeer.InProcessNetwork(), discovery=object())  # type: ignore[arg-type]


def test_options_accept_enums_and_names() -> None:
    async def main() -> None:
        network = multipeer.InProcessNetwork()
        async with multipeer.Session.start(
            "Alice",
            "chat",
            network=network,
            invitation_mode=multipeer.InvitationMode.MANUAL,
            resource_acceptance="MANUAL",
            congestion_control="bbr",
            idle_timeout=2.5,
        ) as session:
            assert session.local_peer.display_name == "Alice"

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_library_checks_what_python_does_not() -> None:
    # Discovery info keys are checked by the native library; its error is the same InvalidConfig.
    async def main() -> None:
        with pytest.raises(multipeer.InvalidConfig, match="discovery") as info:
            await multipeer.Session.start(
                "Alice", "chat", network=multipeer.InProcessNetwork(), discovery_info={"": "empty key"}
            )
        assert isinstance(info.value, ValueError)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_session_is_started_with_start() -> None:
    with pytest.raises(TypeError, match="Session.start"):
        multipeer.Session("Alice", "chat")  # type: ignore[call-arg]


def test_recipients_are_checked() -> None:
    from multipeer._types import peer_ids_of

    assert peer_ids_of(None) == []
    assert peer_ids_of("ab") == ["ab"]
    assert peer_ids_of(multipeer.PeerId("ab", "Alice")) == ["ab"]
    assert peer_ids_of(["ab", multipeer.PeerId("cd", "Bob")]) == ["ab", "cd"]
    with pytest.raises(ValueError, match="no recipients"):
        peer_ids_of([])
    with pytest.raises(TypeError):
        peer_ids_of([42])  # type: ignore[list-item]


def test_identity_helpers() -> None:
    identity = multipeer.generate_identity()
    peer_id = multipeer.identity_peer_id(identity)
    assert len(peer_id) == 64 and int(peer_id, 16) >= 0
    with pytest.raises(multipeer.InvalidIdentity):
        multipeer.identity_peer_id(b"not a key")
