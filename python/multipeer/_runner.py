"""One background event loop for the blocking API: it runs the native library's coroutines for callers that
have no event loop (the synchronous :class:`~multipeer.MultipeerConnectivity` and exit handling)."""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable, Optional, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: Optional[asyncio.AbstractEventLoop] = None
_thread: Optional[threading.Thread] = None


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=_serve, args=(loop, ready), name="multipeer-calls", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run(make: Callable[[], Awaitable[T]], timeout: Optional[float] = None) -> T:
    """Runs the coroutine ``make()`` on the background loop and waits for its result (``timeout`` in seconds:
    ``TimeoutError`` after it, and the coroutine is cancelled). Must not be called on the background loop."""
    loop = _running_loop()
    if threading.current_thread() is _thread:
        raise RuntimeError("multipeer: a blocking call was made on the library's own event loop")

    async def call() -> T:
        return await make()

    future = asyncio.run_coroutine_threadsafe(call(), loop)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


def stop() -> None:
    """Stops the background loop (at exit)."""
    global _loop, _thread
    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    if loop is not None and thread is not None and thread.is_alive():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(2.0)
