"""The library's log records, forwarded to the standard :mod:`logging` module."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Dict, Optional, Union

from . import _ffi
from ._ffi import LogLevel

logger = logging.getLogger("multipeer")
"""The logger the library's records go to (and the Python layer's own warnings)."""

_TO_PYTHON: Dict[LogLevel, int] = {
    LogLevel.ERROR: logging.ERROR,
    LogLevel.WARN: logging.WARNING,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.TRACE: 5,
}

_lock = threading.Lock()
_sink: Optional["_LoggingSink"] = None
_sink_gone = threading.Event()
_sink_ref: Optional["weakref.ref[_LoggingSink]"] = None


def _native_level(level: Union[int, str, LogLevel]) -> LogLevel:
    if isinstance(level, LogLevel):
        return level
    if isinstance(level, str):
        name = level.upper()
        if name in ("WARNING", "WARN"):
            return LogLevel.WARN
        if name in LogLevel.__members__:
            return LogLevel[name]
        if name == "CRITICAL":
            return LogLevel.ERROR
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or TRACE")
    if level >= logging.ERROR:
        return LogLevel.ERROR
    if level >= logging.WARNING:
        return LogLevel.WARN
    if level >= logging.INFO:
        return LogLevel.INFO
    if level >= logging.DEBUG:
        return LogLevel.DEBUG
    return LogLevel.TRACE


def _logger_for(target: str) -> logging.Logger:
    # "multipeer::session::actor" -> the logger "multipeer.session.actor", a child of "multipeer".
    name = target.replace("::", ".")
    if name != "multipeer" and not name.startswith("multipeer."):
        name = "multipeer." + name
    return logging.getLogger(name)


class _LoggingSink(_ffi.LogSink):
    def log(self, record: _ffi.LogRecord) -> None:
        try:
            _logger_for(record.target).log(
                _TO_PYTHON.get(record.level, logging.DEBUG),
                "%s",
                record.message,
                extra={"rust_target": record.target},
            )
        except Exception:  # never let a logging failure reach the library's log thread
            pass


def enable_logging(level: Union[int, str, LogLevel] = logging.INFO) -> None:
    """Forwards the library's log records at ``level`` and more severe to the :mod:`logging` logger
    ``"multipeer"`` (records of ``multipeer::session`` go to ``"multipeer.session"``, and so on).

    ``level`` is a :mod:`logging` level (``logging.DEBUG``, ``"INFO"``, ...; below ``DEBUG`` includes the
    library's trace records, logged at level 5) or a :class:`LogLevel`. The records arrive on a thread of the
    library's own through a bounded queue: logging never slows a session down, and when Python falls behind,
    records are dropped (and the next one says how many). Configure handlers as usual, for example
    ``logging.basicConfig(level=logging.INFO)``. Calling it again changes the level.
    """
    global _sink, _sink_ref
    native = _native_level(level)
    with _lock:
        if _sink is None:
            _sink = _LoggingSink()
            _sink_gone.clear()
            _sink_ref = weakref.ref(_sink, lambda _: _sink_gone.set())
        _ffi.set_log_sink(native, _sink)


def disable_logging() -> None:
    """Stops forwarding the library's log records."""
    global _sink
    with _lock:
        _ffi.clear_log_sink()
        _sink = None


def _shutdown(timeout: float = 1.0) -> None:
    """At exit: stop logging and wait (bounded) until the library let go of the sink."""
    with _lock:
        active = _sink is not None
    if active:
        disable_logging()
        _sink_gone.wait(timeout)
