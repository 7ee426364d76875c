"""Checking the settings of a session in Python, before the native library sees them."""

from __future__ import annotations

import enum
import json
import os
import unicodedata
from typing import Any, Mapping, Optional, Type, TypeVar, Union

from . import _ffi
from ._ffi import CongestionControl, InvitationMode, ResourceAcceptance
from .errors import InvalidConfig

MAX_DISPLAY_NAME_BYTES = 63
MAX_SERVICE_TYPE_LEN = 15

_SERVICE_TYPE_RULE = (
    "allowed: 1-15 characters of a-z, 0-9 and '-', no leading, trailing or double '-', at least one letter"
)
_DISPLAY_NAME_RULE = f"allowed: 1-{MAX_DISPLAY_NAME_BYTES} bytes of UTF-8 without control characters"


def validate_service_type(service_type: str) -> str:
    """Returns ``service_type`` if it is a valid DNS-SD service type, else raises :class:`InvalidConfig`
    (a ``ValueError``): 1-15 characters of a-z, 0-9 and '-', no leading, trailing or double '-', at least one
    letter (``"chat"``, ``"my-game-2"``)."""

    def fail(problem: str) -> InvalidConfig:
        return InvalidConfig(f"invalid service type {service_type!r}: {problem}; {_SERVICE_TYPE_RULE}")

    if not isinstance(service_type, str):
        raise TypeError(f"service_type must be a str, not {type(service_type).__name__}")
    if not service_type:
        raise fail("it is empty")
    if len(service_type) > MAX_SERVICE_TYPE_LEN:
        raise fail(f"it is longer than {MAX_SERVICE_TYPE_LEN} characters")
    if any(not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-") for c in service_type):
        raise fail("it contains a character other than a-z, 0-9 and '-'")
    if service_type.startswith("-") or service_type.endswith("-"):
        raise fail("it starts or ends with '-'")
    if "--" in service_type:
        raise fail("it contains '--'")
    if not any("a" <= c <= "z" for c in service_type):
        raise fail("it has no letter")
    return service_type


def validate_display_name(display_name: str) -> str:
    """Returns ``display_name`` if it is valid, else raises :class:`InvalidConfig` (a ``ValueError``):
    1-63 bytes of UTF-8, not only white space, without control characters."""

    def fail(problem: str) -> InvalidConfig:
        return InvalidConfig(f"invalid display name {display_name!r}: {problem}; {_DISPLAY_NAME_RULE}")

    if not isinstance(display_name, str):
        raise TypeError(f"display_name must be a str, not {type(display_name).__name__}")
    if not display_name.strip():
        raise fail("it is empty")
    size = len(display_name.encode("utf-8"))
    if size > MAX_DISPLAY_NAME_BYTES:
        raise fail(f"it is {size} bytes, longer than {MAX_DISPLAY_NAME_BYTES}")
    if any(unicodedata.category(c) == "Cc" for c in display_name):
        raise fail("it contains a control character")
    return display_name


_Enum = TypeVar("_Enum", bound=enum.Enum)


def _choice(value: Union[str, _Enum], kind: Type[_Enum], what: str) -> _Enum:
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value.upper() in kind.__members__:
        return kind[value.upper()]
    allowed = ", ".join(repr(name.lower()) for name in kind.__members__)
    raise InvalidConfig(f"{what} {value!r} is not one of {allowed}")


def _millis(seconds: Optional[float], what: str) -> Optional[int]:
    if seconds is None:
        return None
    if seconds < 0:
        raise InvalidConfig(f"{what} must not be negative, not {seconds!r}")
    return int(round(seconds * 1000))


def encode_json(value: Any, what: str) -> str:
    """``value`` as compact JSON; a clear ``TypeError`` if it cannot be."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serialisable: {e}") from None


def build_config(
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
) -> _ffi.SessionConfig:
    """The native configuration for these settings, checked here first where Python can tell."""
    validate_display_name(display_name)
    validate_service_type(service_type)
    if not isinstance(max_peers, int) or not 2 <= max_peers <= 8:
        raise InvalidConfig(f"max_peers {max_peers!r} is out of range; allowed: 2..=8, counting the local peer")
    info = {}
    for key, value in (discovery_info or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidConfig(f"discovery_info entries must be str: str, not {key!r}: {value!r}")
        info[key] = value
    return _ffi.SessionConfig(
        service_type=service_type,
        display_name=display_name,
        max_peers=max_peers,
        discovery_info=info,
        initial_data_json=None if initial_data is None else encode_json(initial_data, "initial_data"),
        identity=None if identity is None else bytes(identity),
        passphrase=passphrase,
        idle_timeout_ms=_millis(idle_timeout, "idle_timeout"),
        congestion_control=_choice(congestion_control, CongestionControl, "congestion_control"),
        resource_acceptance=_choice(resource_acceptance, ResourceAcceptance, "resource_acceptance"),
        resource_directory=None if resource_directory is None else os.fspath(resource_directory),
        max_resource_size=max_resource_size,
        max_resource_bytes_per_peer=max_resource_bytes_per_peer,
        resume_window_ms=_millis(resume_window, "resume_window"),
        overwrite_resources=bool(overwrite_resources),
        invitation_mode=_choice(invitation_mode, InvitationMode, "invitation_mode"),
        answer_timeout_ms=_millis(answer_timeout, "answer_timeout"),
    )
